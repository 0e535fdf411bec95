/**
 * proposals.ts: RUN/proposals.json, stage 1's output for stage 2 (SPEC §3): PP, RP and NP of each
 * training video and PP of each test video, and their conversion into stage 2's inputs in
 * snippets (seconds x 25 / 16 rounded to 3 decimals, as the reference's dataset does).
 */
import * as fs from 'fs';
import type { RankedProposals, Span } from './ranking';
import { DuplicateKeyError, readJsonFile } from '../../util/json';

/** RUN/proposals.json as finishStage1 writes it. */
export interface ProposalsFile {
  units?: Record<string, string>;
  train: Record<string, RankedProposals>;
  test: Record<string, { PP: Record<string, Span[]> }>;
}

export function readProposalsFile(file: string): ProposalsFile {
  let p: ProposalsFile;
  try {
    p = readJsonFile(file) as ProposalsFile;
  } catch (e) {
    if (e instanceof DuplicateKeyError) throw e;
    throw new Error(`${file}: cannot read stage-1 proposals (${(e as Error).message}); run stage 1 first`);
  }
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(p) || !isObj(p.train) || !isObj(p.test)) throw new Error(`${file}: expected {"train": {...}, "test": {...}} as stage 1 writes it`);
  const bad = (field: string, want: string, got: unknown): never => {
    throw new Error(`${file}: field ${field} must be ${want}, received ${JSON.stringify(got)?.slice(0, 120)}; rerun stage 1 to rewrite it`);
  };
  // [start, end, score] with finite numbers (a span may be null in RP: a point without a match)
  const span = (x: unknown, field: string, nullable = false): void => {
    if (x === null && nullable) return;
    if (!Array.isArray(x) || x.length !== 3 || !x.every((v) => typeof v === 'number' && Number.isFinite(v))) bad(field, '[start, end, score] (finite numbers)', x);
    const [a, b] = x as number[];
    if (a > b || Math.abs(a) > 1e7 || Math.abs(b) > 1e7) bad(field, 'a span with start <= end within 1e7', x);
  };
  const byClass = (x: unknown, field: string, nullable: boolean): void => {
    if (!isObj(x)) bad(field, 'an object {class: [spans]}', x);
    for (const [label, spans] of Object.entries(x as Record<string, unknown>)) {
      if (!Array.isArray(spans)) bad(`${field}.${label}`, 'a list of spans', spans);
      (spans as unknown[]).forEach((sp, i) => span(sp, `${field}.${label}[${i}]`, nullable));
    }
  };
  for (const [video, r] of Object.entries(p.train)) {
    const f = `train.${video}`;
    if (!isObj(r)) bad(f, 'an object {PP, RP, NP}', r);
    byClass(r.PP ?? {}, `${f}.PP`, false);
    byClass(r.RP ?? {}, `${f}.RP`, true);
    if (!Array.isArray(r.NP ?? [])) bad(`${f}.NP`, 'a list of spans', r.NP);
    ((r.NP ?? []) as unknown[]).forEach((sp, i) => span(sp, `${f}.NP[${i}]`));
  }
  for (const [video, r] of Object.entries(p.test)) {
    if (!isObj(r)) bad(`test.${video}`, 'an object {PP}', r);
    byClass(r.PP ?? {}, `test.${video}.PP`, false);
  }
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
