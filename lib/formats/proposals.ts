/**
 * proposals.ts: RUN/proposals.json, stage 1's output for stage 2 (SPEC §3):
 *   {"units": {...}, "train": {video: {"PP": {class: [[s, e, score]]}, "RP": {class: [span | null]}, "NP": [[s, e, score]]}},
 *    "test": {video: {"PP": {class: [[s, e, score]]}}}}
 * PP and RP in seconds, NP in snippets, as the reference writes them. An ActivityNet 1.3 run has
 * tens of millions of spans, so the file is written video by video (ProposalsWriter, the bytes
 * JSON.stringify would give) and read member by member, each video's spans packed into a
 * Float64Array as soon as it is parsed (as JS arrays they took 3.8 GB of heap; packed, under 1 GB).
 */
import { readJson, FormatError, isObject, entriesOf, emptyRecord, shown } from './text';
import { AtomicFileWriter } from '../util/fs';

export const PROPOSALS_FILE = 'proposals.json';

/** [start, end, score] */
export type Span = [number, number, number];

/** A training video's ranked proposals (SPEC §3). */
export interface RankedProposals {
  /** candidates by class name: [start s, end s, score] */
  PP: Record<string, Span[]>;
  /** per class name, one entry per point of that class (in time order): the matched candidate or null */
  RP: Record<string, (Span | null)[]>;
  /** background spans in snippets: [start, end, -normalised length] */
  NP: Span[];
}

/** Spans packed [n, 3]: start, end, score (Float64: the file's numbers exactly, 24 bytes a span). */
export type PackedSpans = Float64Array;

/** A training video's ranked proposals in memory (RankedProposals with PP and NP packed). */
export interface TrainProposals {
  PP: Record<string, PackedSpans>;
  RP: Record<string, (Span | null)[]>;
  NP: PackedSpans;
}

/** RUN/proposals.json in memory (null-prototype records: any video or class name is a plain key). */
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
  const out = emptyRecord<PackedSpans>();
  for (const [label, spans] of Object.entries(byClass)) out[label] = packSpans(spans);
  return out;
}

/** RankedProposals as stage 2 keeps them. */
export function packRanked(r: RankedProposals): TrainProposals {
  return { PP: packByClass(r.PP), RP: r.RP, NP: packSpans(r.NP) };
}

/** Reads and checks RUN/proposals.json (any size: members are parsed and packed one video at a time). */
export function readProposals(file: string): ProposalsFile {
  const bad = (field: string, want: string, got: unknown): never => {
    throw new FormatError(`${file}: field ${field} must be ${want}, received ${shown(got, 120)}; rerun stage 1 to rewrite it`);
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
    if (!isObject(x)) bad(field, 'an object {class: [spans]}', x);
    const out = emptyRecord<Span[]>();
    for (const [label, l] of entriesOf(x as Record<string, unknown>)) out[label] = spans(l, `${field}.${label}`, nullable);
    return out;
  };
  // each video is checked and packed as soon as it is parsed
  const member = (p: (string | number)[], r: unknown): unknown => {
    const f = `${p[0]}.${p[1]}`;
    if (p[0] === 'train') {
      if (!isObject(r)) bad(f, 'an object {PP, RP, NP}', r);
      const v = r as Record<string, unknown>;
      return { PP: packByClass(byClass(v.PP ?? {}, `${f}.PP`, false)), RP: byClass(v.RP ?? {}, `${f}.RP`, true), NP: packSpans(spans(v.NP ?? [], `${f}.NP`, false)) };
    }
    if (p[0] === 'test') {
      if (!isObject(r)) bad(f, 'an object {PP}', r);
      return { PP: packByClass(byClass((r as Record<string, unknown>).PP ?? {}, `${f}.PP`, false)) };
    }
    return r;
  };
  const p = readJson(file, 'stage-1 proposals', member) as ProposalsFile;
  if (!isObject(p) || !isObject(p.train) || !isObject(p.test)) throw new FormatError(`${file}: expected {"train": {...}, "test": {...}} as stage 1 writes it`);
  const byName = <T>(x: Record<string, T>): Record<string, T> => Object.assign(emptyRecord<T>(), Object.fromEntries(entriesOf(x))) as Record<string, T>;
  return { units: p.units, train: byName(p.train), test: byName(p.test) };
}

/**
 * Writes proposals.json as it is produced, training videos first, then test videos; the file
 * appears only when committed whole.
 */
export class ProposalsWriter {
  private readonly w: AtomicFileWriter;
  private trainCount = 0;
  private testCount = -1;

  constructor(readonly file: string) {
    this.w = new AtomicFileWriter(file);
    this.w.write(`{"units":${JSON.stringify({ PP: 'seconds', RP: 'seconds', NP: 'snippets' })},"train":{`);
  }

  /** Training videos' ranked proposals (a batch at a time). */
  train(videos: [string, RankedProposals][]): void {
    if (this.testCount >= 0) throw new Error(`${this.file}: training videos after the test videos`);
    if (!videos.length) return;
    this.w.write((this.trainCount ? ',' : '') + videos.map(([name, r]) => `${JSON.stringify(name)}:${JSON.stringify(r)}`).join(','));
    this.trainCount += videos.length;
  }

  /** A test video's candidates by class. */
  test(name: string, pp: Record<string, Span[]>): void {
    if (this.testCount < 0) {
      this.w.write('},"test":{');
      this.testCount = 0;
    }
    this.w.write(`${this.testCount++ ? ',' : ''}${JSON.stringify(name)}:${JSON.stringify({ PP: pp })}`);
  }

  commit(): void {
    if (this.testCount < 0) this.w.write('},"test":{');
    this.w.write('}}');
    this.w.commit();
  }

  abort(): void {
    this.w.abort();
  }
}
