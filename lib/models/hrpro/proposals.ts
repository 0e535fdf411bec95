/**
 * proposals.ts: RUN/proposals.json, stage 1's output for stage 2 (SPEC §3): PP, RP and NP of each
 * training video and PP of each test video, and their conversion into stage 2's inputs in
 * snippets (seconds x 25 / 16 rounded to 3 decimals, as the reference's dataset does).
 */
import * as fs from 'fs';
import type { RankedProposals, Span } from './ranking';

/** RUN/proposals.json as finishStage1 writes it. */
export interface ProposalsFile {
  units?: Record<string, string>;
  train: Record<string, RankedProposals>;
  test: Record<string, { PP: Record<string, Span[]> }>;
}

export function readProposalsFile(file: string): ProposalsFile {
  let p: ProposalsFile;
  try {
    p = JSON.parse(fs.readFileSync(file, 'utf8')) as ProposalsFile;
  } catch (e) {
    throw new Error(`${file}: cannot read stage-1 proposals (${(e as Error).message}); run stage 1 first`);
  }
  if (!p || typeof p.train !== 'object' || typeof p.test !== 'object') throw new Error(`${file}: expected {"train": {...}, "test": {...}} as stage 1 writes it`);
  return p;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** One training video's stage-2 inputs, in snippets: proposals [M, 2] (PP then NP) and the RP targets [K, 2]. */
export function trainingProposals(r: RankedProposals | undefined, snippetsPerSecond: number): { proposals: Float32Array; targets: Float32Array } {
  const props: number[] = [];
  const targets: number[] = [];
  if (r) {
    for (const spans of Object.values(r.PP ?? {})) for (const [s, e] of spans) props.push(round3(s * snippetsPerSecond), round3(e * snippetsPerSecond));
    for (const [s, e] of r.NP ?? []) props.push(s, e);
    for (const spans of Object.values(r.RP ?? {})) for (const sp of spans) if (sp) targets.push(round3(sp[0] * snippetsPerSecond), round3(sp[1] * snippetsPerSecond));
  }
  return { proposals: Float32Array.from(props), targets: Float32Array.from(targets) };
}

/** A test video's PP in snippets with their class and OIC score. */
export function testProposals(pp: Record<string, Span[]> | undefined, classNames: string[], snippetsPerSecond: number): { proposals: Float32Array; classIndex: Int32Array; score: Float32Array } {
  const props: number[] = [];
  const cls: number[] = [];
  const score: number[] = [];
  for (const [label, spans] of Object.entries(pp ?? {})) {
    const c = classNames.indexOf(label);
    if (c < 0) throw new Error(`stage 2: proposals.json names class '${label}', which is not in the dataset's classes`);
    for (const [s, e, sc] of spans) {
      props.push(round3(s * snippetsPerSecond), round3(e * snippetsPerSecond));
      cls.push(c);
      score.push(sc);
    }
  }
  return { proposals: Float32Array.from(props), classIndex: Int32Array.from(cls), score: Float32Array.from(score) };
}
