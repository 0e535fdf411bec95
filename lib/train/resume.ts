/**
 * resume.ts: what `--resume` compares. A run goes on only when what decides its numbers is what it
 * recorded when it started (RUN/config.json, stage2_config.json, tspnet_config.json):
 *
 *   - the method's configuration: seed, learning rate, batch size, test interval, model, loss and
 *     inference settings, the selection rule, the class names, the training videos;
 *   - the inputs: the data (a digest of each annotation file: gt_full.json, split_*.txt, the point
 *     labels, Ambiguous_test.txt; and a digest of the feature files' names, sizes and first and last
 *     4 KiB), the dataset config (its content), and for stage 2 and TSPNet the stage-1
 *     ranking or base proposals they learn from (a digest of the file);
 *   - the precision of the CPU matrix products (--precision): bf16 operands change the numbers
 *     beyond rounding, a choice of the experiment.
 *
 * Accepted, and recorded in the config's "changes" at the step they took effect:
 *   - a longer schedule (more iterations or epochs; never fewer): the steps already done are those of
 *     the longer run (no schedule depends on the total), so the weights equal a run trained for the
 *     longer schedule from the start; the old schedule's final test may add a candidate best;
 *   - how often the state is checkpointed (no number depends on it);
 *   - the device: the saved state (weights, Adam moments, random streams) is exact and the same on
 *     every device; CPU and CUDA kernels round differently, as thread counts do, so going on on
 *     another machine is an operational choice, not another experiment;
 *   - the data folder's path when its digests are unchanged (a moved or copied folder), and the
 *     dataset config's name when its content is unchanged.
 * Everything else is refused, naming each field with its recorded and its given value. Groups a
 * run of an older version did not record (inputs, compute) are not compared.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { DatasetConfig } from '../data/config';
import { GT_FILE } from '../formats/ground_truth';
import { POINT_FILE } from '../formats/point_labels';
import { AMBIGUOUS_FILE, splitFile } from '../formats/splits';
import type { ConfigChange, RunInputs } from '../formats/run_config';
import { getGemmPrecision } from '../runtime/native';
import { digestIfRead } from '../util/digests';

const SAMPLE_BYTES = 4096;
const digestOf = (h: crypto.Hash): string => `sha256:${h.digest('hex').slice(0, 16)}`;

/** A digest of a file's bytes (read in chunks). */
export function fileDigest(file: string): string {
  const known = digestIfRead(file); // the readers noted it as they parsed it: not read again
  if (known) return known;
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return digestOf(h);
}

/** The first and last SAMPLE_BYTES of a file (all of it when smaller). */
function headAndTail(file: string, size: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    if (size <= 2 * SAMPLE_BYTES) {
      const b = Buffer.alloc(size);
      fs.readSync(fd, b, 0, size, 0);
      return b;
    }
    const b = Buffer.alloc(2 * SAMPLE_BYTES);
    fs.readSync(fd, b, 0, SAMPLE_BYTES, 0);
    fs.readSync(fd, b, SAMPLE_BYTES, SAMPLE_BYTES, size - SAMPLE_BYTES);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The data folder's identity: its absolute path, a digest of each annotation file, and one of the
 * feature files (features/{train,test}/*.npy: names, sizes, first and last 4 KiB; a file rewritten
 * in place with the same size and the same ends is not seen, the price of not reading gigabytes).
 */
export function dataInputs(root: string): NonNullable<RunInputs['data']> {
  const folder = path.resolve(root);
  const annotations: Record<string, string> = {};
  for (const f of [GT_FILE, splitFile('train'), splitFile('test'), POINT_FILE, AMBIGUOUS_FILE]) {
    const file = path.join(folder, f);
    if (fs.existsSync(file)) annotations[f.split(path.sep).join('/')] = fileDigest(file);
  }
  const h = crypto.createHash('sha256');
  let files = 0;
  let bytes = 0;
  for (const split of ['train', 'test']) {
    const dir = path.join(folder, 'features', split);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.npy')).sort()) {
      const file = path.join(dir, name);
      const size = fs.statSync(file).size;
      h.update(`${split}/${name}\0${size}\0`);
      h.update(headAndTail(file, size));
      files++;
      bytes += size;
    }
  }
  return { folder, annotations, features: { files, bytes, digest: digestOf(h) } };
}

/** JSON with the keys of every object sorted (a key that does not depend on key order). */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x && typeof x === 'object')
    return `{${Object.keys(x)
      .filter((k) => (x as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((x as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(x) ?? 'null';
}

/** The dataset config as recorded: its content (not where its file is), so that a difference names the field. */
export function configInputs(config: DatasetConfig): NonNullable<RunInputs['config']> {
  const { file: _file, ...content } = config;
  return JSON.parse(JSON.stringify(content)) as Record<string, unknown>;
}

const inputsCache = new Map<string, RunInputs>();

/** The data folder's and the dataset config's identity (computed once a process for a folder and config). */
export function runInputs(root: string, config: DatasetConfig): RunInputs {
  const c = configInputs(config);
  const key = `${path.resolve(root)}\0${canonical(c)}`;
  let r = inputsCache.get(key);
  if (!r) inputsCache.set(key, (r = { data: dataInputs(root), config: c }));
  return r;
}

/** Where and how a run computes, as its config records it. */
export function computeRecord(device: string | undefined): { device: string; precision: string } {
  return { device: device ?? 'cpu', precision: getGemmPrecision() };
}

// ---------------------------------------------------------------------------------------------
// the comparison
// ---------------------------------------------------------------------------------------------

/** What a resume may change besides the always-accepted fields (ALWAYS_ACCEPTED). */
export interface ResumeRules {
  /** the schedule's length ('stage1.iterations'): accepted when it grows */
  length?: string;
  /** fields no number depends on ('stage1.checkpointEvery'): accepted either way */
  free?: string[];
}

/** Accepted on every resume: the device, a moved data folder (same digests), a renamed dataset config (same content). */
export const ALWAYS_ACCEPTED = ['compute.device', 'inputs.data.folder', 'inputs.config.name'];
/** Compared only when both sides have them (a run of an older version did not record them). */
const OPTIONAL_GROUPS = ['inputs.data', 'inputs.config', 'inputs.proposals', 'compute'];
/** Not settings: the record of changes, and an imported stage's origin. */
const IGNORED = ['changes', 'imported'];

export interface FieldDifference {
  field: string;
  /** undefined: not in the record */
  recorded: unknown;
  /** undefined: not given */
  given: unknown;
  /** why an accepted-kind field is refused (a shorter schedule) */
  note?: string;
}

export interface ResumeComparison {
  refused: FieldDifference[];
  accepted: FieldDifference[];
  /** groups only one side has (not compared) */
  unchecked: string[];
}

function flatten(x: unknown, prefix: string, out: Map<string, string>): void {
  if (x && typeof x === 'object' && !Array.isArray(x)) {
    for (const [k, v] of Object.entries(x)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  if (x !== undefined) out.set(prefix, JSON.stringify(x));
}

const within = (key: string, group: string): boolean => key === group || key.startsWith(`${group}.`);

/** The fields where `given` differs from `recorded`, sorted into accepted and refused by the rules. */
export function compareRunConfigs(recorded: object, given: object, rules: ResumeRules = {}): ResumeComparison {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten(JSON.parse(JSON.stringify(recorded)), '', a);
  flatten(JSON.parse(JSON.stringify(given)), '', b);
  const unchecked: string[] = [];
  for (const g of OPTIONAL_GROUPS) {
    const inA = [...a.keys()].some((k) => within(k, g));
    const inB = [...b.keys()].some((k) => within(k, g));
    if (inA === inB) continue;
    unchecked.push(g);
    for (const m of [a, b]) for (const k of [...m.keys()]) if (within(k, g)) m.delete(k);
  }
  const out: ResumeComparison = { refused: [], accepted: [], unchecked };
  const keys = [...new Set([...b.keys(), ...a.keys()])].filter((k) => !IGNORED.some((g) => within(k, g)));
  const parse = (s: string | undefined): unknown => (s === undefined ? undefined : JSON.parse(s));
  for (const field of keys) {
    if (a.get(field) === b.get(field)) continue;
    const d: FieldDifference = { field, recorded: parse(a.get(field)), given: parse(b.get(field)) };
    if (field === rules.length) {
      if (typeof d.recorded === 'number' && typeof d.given === 'number' && d.given > d.recorded) out.accepted.push(d);
      else out.refused.push({ ...d, note: 'a schedule may be lengthened on resume, not shortened' });
    } else if (ALWAYS_ACCEPTED.includes(field) || rules.free?.includes(field)) out.accepted.push(d);
    else out.refused.push(d);
  }
  return out;
}

function show(v: unknown): string {
  if (v === undefined) return '(none)';
  const s = JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** A resume refused because the run recorded other settings or inputs than the ones given. */
export class ResumeMismatchError extends Error {}

/** The refusal: each differing field with its recorded and its given value. */
export function mismatchMessage(label: string, file: string, refused: FieldDifference[]): string {
  return (
    `${label}: cannot resume: ${file} records other settings or inputs than the ones given ` +
    `(a run goes on only with what decides its numbers unchanged; more iterations or epochs are accepted):\n` +
    refused.map((d) => `  ${d.field}: recorded ${show(d.recorded)}, given ${show(d.given)}${d.note ? ` (${d.note})` : ''}`).join('\n') +
    `\ngive the recorded values to go on, or start a new run: another --out, or --force without --resume to start this one afresh`
  );
}

/** Throws ResumeMismatchError when `given` differs from `recorded` in a refused field; returns the comparison. */
export function checkResume(label: string, file: string, recorded: object, given: object, rules: ResumeRules = {}): ResumeComparison {
  const c = compareRunConfigs(recorded, given, rules);
  if (c.refused.length) throw new ResumeMismatchError(mismatchMessage(label, file, c.refused));
  return c;
}

/** The record of changes after a resume that accepted `accepted` at `step`. */
export function withChanges(previous: ConfigChange[] | undefined, accepted: FieldDifference[], step: number, where: string): ConfigChange[] {
  return [...(previous ?? []), ...accepted.map((d) => ({ step, where, field: d.field, from: d.recorded, to: d.given }))];
}

/** The accepted changes as a log line. */
export function changesLine(label: string, accepted: FieldDifference[], where: string): string {
  return `${label}: from ${where} on: ${accepted.map((d) => `${d.field} ${show(d.recorded)} -> ${show(d.given)}`).join(', ')} (recorded in the run's "changes")`;
}
