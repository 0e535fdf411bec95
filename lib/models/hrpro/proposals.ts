/**
 * proposals.ts: RUN/proposals.json, stage 1's output for stage 2 (SPEC §3): PP, RP and NP of each
 * training video and PP of each test video, and their conversion into stage 2's inputs in
 * snippets (seconds x 25 / 16 rounded to 3 decimals, as the reference's dataset does).
 */
import type { RankedProposals, Span } from './ranking';
import { DuplicateKeyError, readJsonFile } from '../../util/json';

/** Spans packed [n, 3]: start, end, score (Float64: the file's numbers exactly, 24 bytes a span). */
export type PackedSpans = Float64Array;

/** A training video's ranked proposals in memory (RankedProposals with PP and NP packed). */
export interface TrainProposals {
  PP: Record<string, PackedSpans>;
  RP: Record<string, (Span | null)[]>;
  NP: PackedSpans;
}

/**
 * RUN/proposals.json in memory. The file is `{"train": {video: RankedProposals}, "test": {video: {PP}}}`
 * as finishStage1 writes it; its PP and NP are packed as they are read, because an ActivityNet 1.3
 * run has tens of millions (as JS arrays they took 3.8 GB of heap; packed, under 1 GB).
 */
export interface ProposalsFile {
  units?: Record<string, string>;
  train: Record<string, TrainProposals>;
  test: Record<string, { PP: Record<string, PackedSpans> }>;
}

export function packSpans(spans: Span[]): PackedSpans {
  const out = new Float64Array(3 * spans.length);
  spans.forEach((sp, i) => out.set(sp, 3 * i));
  return out;
}

/** Spans grouped by class, packed. */
export function packByClass(byClass: Record<string, Span[]>): Record<string, PackedSpans> {
  const out: Record<string, PackedSpans> = {};
  for (const [label, spans] of Object.entries(byClass)) out[label] = packSpans(spans);
  return out;
}

/** RankedProposals as stage 2 keeps them. */
export function packRanked(r: RankedProposals): TrainProposals {
  return { PP: packByClass(r.PP), RP: r.RP, NP: packSpans(r.NP) };
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A field of proposals.json with the wrong shape (already names the file and the field). */
class ProposalsFieldError extends Error {}

/** Reads and checks RUN/proposals.json (any size: members are parsed and packed one video at a time). */
export function readProposalsFile(file: string): ProposalsFile {
  const bad = (field: string, want: string, got: unknown): never => {
    throw new ProposalsFieldError(`${file}: field ${field} must be ${want}, received ${JSON.stringify(got)?.slice(0, 120)}; rerun stage 1 to rewrite it`);
  };
  // [start, end, score] with finite numbers (a span may be null in RP: a point without a match)
  const span = (x: unknown, field: string, nullable = false): void => {
    if (x === null && nullable) return;
    if (!Array.isArray(x) || x.length !== 3 || !x.every((v) => typeof v === 'number' && Number.isFinite(v))) bad(field, '[start, end, score] (finite numbers)', x);
    const [a, b] = x as number[];
    if (a > b || Math.abs(a) > 1e7 || Math.abs(b) > 1e7) bad(field, 'a span with start <= end within 1e7', x);
  };
  const spans = (x: unknown, field: string, nullable: boolean): Span[] => {
    if (!Array.isArray(x)) bad(field, 'a list of spans', x);
    (x as unknown[]).forEach((sp, i) => span(sp, `${field}[${i}]`, nullable));
    return x as Span[];
  };
  const byClass = (x: unknown, field: string, nullable: boolean): Record<string, Span[]> => {
    if (!isObj(x)) bad(field, 'an object {class: [spans]}', x);
    for (const [label, l] of Object.entries(x as Record<string, unknown>)) spans(l, `${field}.${label}`, nullable);
    return x as Record<string, Span[]>;
  };
  // each video is checked and packed as soon as it is parsed
  const member = (p: (string | number)[], r: unknown): unknown => {
    const f = `${p[0]}.${p[1]}`;
    if (p[0] === 'train') {
      if (!isObj(r)) bad(f, 'an object {PP, RP, NP}', r);
      const v = r as Record<string, unknown>;
      return { PP: packByClass(byClass(v.PP ?? {}, `${f}.PP`, false)), RP: byClass(v.RP ?? {}, `${f}.RP`, true), NP: packSpans(spans(v.NP ?? [], `${f}.NP`, false)) };
    }
    if (p[0] === 'test') {
      if (!isObj(r)) bad(f, 'an object {PP}', r);
      return { PP: packByClass(byClass((r as Record<string, unknown>).PP ?? {}, `${f}.PP`, false)) };
    }
    return r;
  };
  let p: ProposalsFile;
  try {
    p = readJsonFile(file, member) as ProposalsFile;
  } catch (e) {
    if (e instanceof DuplicateKeyError || e instanceof ProposalsFieldError) throw e;
    throw new Error(`${file}: cannot read stage-1 proposals (${(e as Error).message}); run stage 1 first`);
  }
  if (!isObj(p) || !isObj(p.train) || !isObj(p.test)) throw new Error(`${file}: expected {"train": {...}, "test": {...}} as stage 1 writes it`);
  return p;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** One training video's stage-2 inputs, in snippets: proposals [M, 2] (PP then NP) and the RP targets [K, 2]. */
export function trainingProposals(r: TrainProposals | undefined, snippetsPerSecond: number): { proposals: Float32Array; targets: Float32Array } {
  if (!r) return { proposals: new Float32Array(0), targets: new Float32Array(0) };
  const pp = Object.values(r.PP);
  const n = pp.reduce((k, a) => k + a.length / 3, 0) + r.NP.length / 3;
  const proposals = new Float32Array(2 * n);
  let j = 0;
  for (const a of pp) {
    for (let i = 0; i < a.length; i += 3) {
      proposals[j++] = round3(a[i] * snippetsPerSecond);
      proposals[j++] = round3(a[i + 1] * snippetsPerSecond);
    }
  }
  for (let i = 0; i < r.NP.length; i += 3) {
    proposals[j++] = r.NP[i];
    proposals[j++] = r.NP[i + 1];
  }
  const targets: number[] = [];
  for (const spans of Object.values(r.RP)) for (const sp of spans) if (sp) targets.push(round3(sp[0] * snippetsPerSecond), round3(sp[1] * snippetsPerSecond));
  return { proposals, targets: Float32Array.from(targets) };
}

/** A test video's PP in snippets with their class and OIC score. */
export function testProposals(pp: Record<string, PackedSpans> | undefined, classNames: string[], snippetsPerSecond: number): { proposals: Float32Array; classIndex: Int32Array; score: Float32Array } {
  const byClass = Object.entries(pp ?? {});
  const n = byClass.reduce((k, [, a]) => k + a.length / 3, 0);
  const proposals = new Float32Array(2 * n);
  const classIndex = new Int32Array(n);
  const score = new Float32Array(n);
  let j = 0;
  for (const [label, a] of byClass) {
    const c = classNames.indexOf(label);
    if (c < 0) throw new Error(`stage 2: proposals.json names class '${label}', which is not in the dataset's classes`);
    for (let i = 0; i < a.length; i += 3, j++) {
      proposals[2 * j] = round3(a[i] * snippetsPerSecond);
      proposals[2 * j + 1] = round3(a[i + 1] * snippetsPerSecond);
      classIndex[j] = c;
      score[j] = a[i + 2];
    }
  }
  return { proposals, classIndex, score };
}
