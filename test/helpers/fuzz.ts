/**
 * fuzz.ts: a seeded, reproducible fuzzer of every reader of outside data (test/unit/fuzz.test.ts runs a
 * few thousand cases, test/soak/fuzz.ts 10^5). Each target starts from small valid files, mutates
 * them (bit flips, byte overwrites, truncations, insertions, chunk repeats; for text formats also
 * numbers replaced by NaN / Infinity / -1 / 1e300 / 2^53 / words, segments reversed, lines
 * repeated or dropped, BOMs and CRLF; for .npy and safetensors headers huge shapes and wrong
 * dtypes) and reads the result. The oracle: the reader returns, or throws an Error whose message
 * names the file (command-line arguments: a usage error); never another exception type, a stack
 * overflow, a case over 2 s (a hang), or a result larger than a few times the file (an allocation
 * beyond the file's size). Names from the data are keys like any other: the JSON targets have seeds
 * whose videos and classes are named `__proto__`, `constructor`, `toString`, and an accepted result
 * must keep exactly the file's videos (and classes) as own keys (none lost to Object.prototype);
 * a parsed command line must hold no option its command does not have. Case i of seed s is always
 * the same input.
 *
 * Names that would be paths: the split-list and csv-id targets put path separators, `.`/`..`,
 * absolute paths and NULs in video names; a name a reader accepts must make a path inside its
 * folder (lib/util/paths.ts videoFile), and the gt command must emit no such name in the split
 * lists it writes. (gt_full.json keys become paths only through a split entry: covered there.)
 * Non-regular files: about one case in 50, by its own seeded draw (the mutations of the other cases
 * are unchanged), is not a regular file but a FIFO, a link to a FIFO, a link to /dev/zero, a
 * folder or a dangling link; every reader must refuse it with an Error naming it, at once (a
 * FIFO's blocking open is a hang for the watchdog).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Rng } from '../../lib/util/rng';
import { readNpy, readNpyHeader, encodeNpy } from '../../lib/data/npy';
import { loadSafetensors, saveSafetensors } from '../../lib/io/safetensors';
import { readTorchCheckpoint } from '../../lib/io/torch';
import { loadGroundTruth, loadResults } from '../../lib/eval/detection';
import { loadAmbiguous } from '../../lib/eval/ambiguous';
import { readPointLabels } from '../../lib/formats/point_labels';
import { readSplit, readAmbiguous } from '../../lib/formats/splits';
import { readGroundTruth, requireTiming } from '../../lib/formats/ground_truth';
const readPointCsv = (file: string) => readPointLabels(file).rows;
import { loadConfig } from '../../lib/data/config';
import { readProposals } from '../../lib/formats/proposals';
import { parseArgs, CliError } from '../../lib/cli/args';
import { RUN_OPTIONS } from '../../lib/cli/run';
import { checkNumericOptions } from '../../lib/cli/training';
import { EVAL_OPTIONS } from '../../lib/cli/eval';
import { DuplicateKeyError, findDuplicateKey } from '../../lib/util/json';
import { FormatError } from '../../lib/formats/text';
import { nameProblem, videoFile } from '../../lib/util/paths';
import { groundTruthFromPoints } from '../../lib/data/points';
import { spawnSync } from 'child_process';
import { Zip, ZipPassThrough, unzipSync } from 'fflate';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');
const CONFIGS = path.resolve(__dirname, '..', '..', 'configs');

export interface Target {
  name: string;
  ext: string;
  text: boolean;
  seeds: Buffer[];
  /**
   * reads the file; returns the number of bytes its result holds (for the allocation bound), or
   * that and a broken invariant of an accepted result (a reversed segment, a NaN...)
   */
  read(file: string): number | { bytes: number; problem?: string | null };
  /** extra mutations of the format (on the text or bytes) */
  mutate?(b: Buffer, rng: Rng): Buffer;
}

const bytesOf = (x: unknown): number => {
  if (x instanceof Float32Array) return x.byteLength;
  if (x instanceof Map) {
    let n = 0;
    for (const v of x.values()) n += bytesOf(v);
    return n;
  }
  if (x && typeof x === 'object' && 'data' in (x as object)) return bytesOf((x as { data: unknown }).data);
  return 0;
};

function npySeed(shape: number[], descr = '<f4'): Buffer {
  const n = shape.reduce((a, b) => a * b, 1);
  const parts = encodeNpy(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), shape);
  let b = Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
  if (descr !== '<f4') b = Buffer.from(b.toString('latin1').replace("'<f4'", `'${descr}'`), 'latin1');
  return b;
}

function safetensorsSeed(tmp: string): Buffer {
  const f = path.join(tmp, 'seed.safetensors');
  saveSafetensors(f, new Map([['a.weight', { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7) }], ['b', { shape: [2], data: Float32Array.of(1, -1) }]]), { pstal: 'x', state: '{"step":1}' });
  return fs.readFileSync(f);
}

const json = (o: unknown): Buffer => Buffer.from(JSON.stringify(o, null, 1));

// ---- hostile containers, built byte by byte ------------------------------------------------------

/**
 * A zip archive of stored entries in the given order; unlike zipSync (an object of names) it can
 * hold two entries of one name, as a hostile archive does.
 */
export function zipEntries(entries: [string, Uint8Array][]): Buffer {
  const chunks: Uint8Array[] = [];
  const z = new Zip((err, data) => {
    if (err) throw err;
    chunks.push(data);
  });
  for (const [name, data] of entries) {
    const e = new ZipPassThrough(name);
    z.add(e);
    e.push(data, true);
  }
  z.end();
  return Buffer.concat(chunks);
}

/**
 * The bytes an oracle judges a case by: only a regular file's (a FIFO in place of the file would
 * block readFileSync for ever, /dev/zero would fill memory). The reader under test is handed the
 * path itself and must refuse such a file on its own.
 */
function oracleBytes(f: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(f);
  } catch {
    return Buffer.alloc(0); // a dangling link
  }
  return st.isFile() ? fs.readFileSync(f) : Buffer.alloc(0);
}

/** The entry names of a zip archive as the checkpoint reader's zip parser (fflate) lists them, or null when it cannot. */
export function zipNames(b: Buffer): string[] | null {
  const names: string[] = [];
  try {
    unzipSync(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), {
      filter: (f) => {
        names.push(f.name);
        if (names.length > 10000) throw new Error('too many');
        return false;
      },
    });
  } catch {
    return null;
  }
  return names;
}

/** One tensor of a hand-made torch.save archive; size, stride and offset may be anything (hostile pickles). */
export interface PickledTensor {
  name: string;
  values: number[];
  dtype?: 'float32' | 'float64';
  size?: unknown;
  stride?: unknown;
  offset?: unknown;
  /** a BUILD of this state on the rebuilt tensor (torch.save never writes one) */
  build?: Record<string, unknown>;
  /** a BUILD of this state on the storage reference */
  storageBuild?: Record<string, unknown>;
}

/** Pickle protocol 2 opcodes for the values a hostile state needs: ints, floats, strings, None, tuples, dicts. */
function pickleValue(v: unknown): Buffer {
  if (v === null || v === undefined) return Buffer.from('N');
  if (typeof v === 'boolean') return Buffer.from([v ? 0x88 : 0x89]);
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(s.length);
    return Buffer.concat([Buffer.from('X'), len, s]);
  }
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v < 256) return Buffer.from([0x4b, v]);
    if (Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a;
      b.writeInt32LE(v, 1);
      return b;
    }
    const b = Buffer.alloc(9);
    b[0] = 0x47;
    b.writeDoubleBE(v, 1);
    return b;
  }
  if (Array.isArray(v)) return Buffer.concat([Buffer.from('('), ...v.map(pickleValue), Buffer.from('t')]);
  if (typeof v === 'object') {
    const items = Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => [pickleValue(k), pickleValue(x)]);
    return Buffer.concat([Buffer.from('}('), ...items, Buffer.from('u')]);
  }
  throw new Error(`pickleValue: ${typeof v}`);
}

const pickleGlobal = (mod: string, name: string): Buffer => Buffer.from(`c${mod}\n${name}\n`, 'latin1');

/**
 * A torch.save (zip format) archive of a state dict {name: tensor}, written as torch does it
 * (archive/data.pkl calling torch._utils._rebuild_tensor_v2, storages as persistent ids in
 * archive/data/<key>), from the spec: hostile rebuild arguments and BUILD states included.
 * `extra` entries are appended (a second entry of a name already there makes an ambiguous archive).
 */
export function torchArchive(tensors: PickledTensor[], extra: [string, Uint8Array][] = []): Buffer {
  const parts: Buffer[] = [Buffer.from([0x80, 0x02]), pickleGlobal('collections', 'OrderedDict'), Buffer.from(')R')];
  const storages: [string, Uint8Array][] = [];
  tensors.forEach((t, key) => {
    const dtype = t.dtype ?? 'float32';
    const esize = dtype === 'float64' ? 8 : 4;
    const data = Buffer.alloc(esize * t.values.length);
    t.values.forEach((x, i) => (dtype === 'float64' ? data.writeDoubleLE(x, 8 * i) : data.writeFloatLE(x, 4 * i)));
    storages.push([`archive/data/${key}`, new Uint8Array(data)]);
    parts.push(
      pickleValue(t.name),
      pickleGlobal('torch._utils', '_rebuild_tensor_v2'),
      Buffer.from('(('),
      pickleValue('storage'),
      pickleGlobal('torch', dtype === 'float64' ? 'DoubleStorage' : 'FloatStorage'),
      pickleValue(String(key)),
      pickleValue('cpu'),
      pickleValue(t.values.length),
      Buffer.from('tQ'),
      t.storageBuild ? Buffer.concat([pickleValue(t.storageBuild), Buffer.from('b')]) : Buffer.alloc(0),
      pickleValue(t.offset ?? 0),
      pickleValue(t.size ?? [t.values.length]),
      pickleValue(t.stride ?? [1]),
      Buffer.from([0x89]),
      pickleGlobal('collections', 'OrderedDict'),
      Buffer.from(')Rt'),
      Buffer.from('R'),
      t.build ? Buffer.concat([pickleValue(t.build), Buffer.from('b')]) : Buffer.alloc(0),
      Buffer.from('s'),
    );
  });
  parts.push(Buffer.from('.'));
  return zipEntries([
    ['archive/data.pkl', new Uint8Array(Buffer.concat(parts))],
    ['archive/byteorder', new Uint8Array(Buffer.from('little'))],
    ...storages,
    ['archive/version', new Uint8Array(Buffer.from('3\n'))],
    ...extra,
  ]);
}

/** A safetensors file from raw header entries (any data_offsets) and data bytes. */
export function safetensorsBytes(header: Record<string, unknown>, data: Buffer): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

/** A .npy file with the given header dict text (its length field set to match) and data. */
export function npyBytes(dict: string, data: Buffer): Buffer {
  let header = dict;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), data]);
}

const NONFINITE_F32 = [Buffer.from([0, 0, 0xc0, 0x7f]), Buffer.from([0, 0, 0x80, 0x7f]), Buffer.from([0, 0, 0x80, 0xff])]; // NaN, +Inf, -Inf
const F64_HUGE = (): Buffer => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(1e300);
  return b;
};

/**
 * Container mutations of a torch archive: an entry given twice (same or other bytes), a NaN/Inf or a
 * float64 1e300 written into a storage, or a BUILD of a hostile state on a tensor or its storage.
 */
function mutateTorchContainer(b: Buffer, rng: Rng): Buffer {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  } catch {
    return b;
  }
  const names = Object.keys(files);
  if (!names.length) return b;
  const op = rng.int(3);
  if (op === 0) {
    // an entry twice: first or last, same bytes or others
    const n = pick(rng, names);
    const other = Buffer.from(files[n]);
    if (other.length && rng.uniform() < 0.7) other[rng.int(other.length)] ^= 1 + rng.int(255);
    const entries = names.map((k) => [k, files[k]] as [string, Uint8Array]);
    const dup: [string, Uint8Array] = [n, new Uint8Array(other)];
    if (rng.uniform() < 0.5) entries.push(dup);
    else entries.splice(rng.int(entries.length + 1), 0, dup);
    return zipEntries(entries);
  }
  if (op === 1) {
    // a non-finite value (or a float64 beyond float32's range) in a storage
    const data = names.filter((k) => /\/data\/[^/]+$/.test(k) && files[k].length >= 8);
    if (!data.length) return b;
    const n = pick(rng, data);
    const buf = Buffer.from(files[n]);
    const pat = rng.uniform() < 0.3 ? F64_HUGE() : pick(rng, NONFINITE_F32);
    const slot = rng.int(Math.floor(buf.length / pat.length)) * pat.length;
    pat.copy(buf, slot);
    files[n] = new Uint8Array(buf);
    return zipEntries(names.map((k) => [k, files[k]]));
  }
  // a hostile BUILD state or rebuild argument
  const junk = (): unknown => pick(rng, ['abc', null, -1, 1.5, [], [-1], [2, 'x'], [1e300], { a: 1 }, [1, 1, 1, 1, 1, 1, 1, 1, 1, 4294967296]]);
  const spec: PickledTensor[] = [
    { name: 'a.weight', values: [1, 2, 3, 4, 5, 6], size: [2, 3], stride: [3, 1] },
    { name: 'b', values: [0.5, -0.25], dtype: 'float64' },
  ];
  const t = pick(rng, spec);
  const field = rng.int(6);
  if (field === 0) t.build = { [pick(rng, ['size', 'stride', 'offset', 'storage'])]: junk() };
  else if (field === 1) t.storageBuild = { [pick(rng, ['type', 'key', 'location'])]: junk() };
  else if (field === 2) t.size = junk();
  else if (field === 3) t.stride = junk();
  else if (field === 4) t.offset = junk();
  else t.values[rng.int(t.values.length)] = pick(rng, [NaN, Infinity, -Infinity, 1e300, -1e39]);
  return torchArchive(spec);
}

/** A key of a .npy header given twice with another value ('shape': (5, 4) -> 'shape': (5, 4), 'shape': (4, 5)). */
function mutateNpyKeys(b: Buffer, rng: Rng): Buffer {
  const text = b.toString('latin1');
  const i = text.indexOf('{');
  const j = text.indexOf('}');
  if (i < 0 || j < i) return b;
  const key = pick(rng, ["'shape': (2, 2)", "'shape': (1,)", "'descr': '<f8'", "'fortran_order': True", "'shape': ()", '"shape": (3, 1)']);
  const head = rng.uniform() < 0.5 ? text.slice(i, j).replace(/,?\s*$/, `, ${key}, `) + '}' : `{${key}, ` + text.slice(i + 1, j + 1);
  const rest = text.slice(j + 1).replace(/^ */, '');
  return npyBytes(head, Buffer.from(rest.replace(/^\n/, ''), 'latin1'));
}

/** safetensors: two tensors over the same bytes, or a NaN/Inf in the data. */
function mutateSafetensorsContainer(b: Buffer, rng: Rng): Buffer {
  if (b.length < 8) return b;
  const n = Number(b.readBigUInt64LE(0));
  if (!(n > 0 && 8 + n <= b.length)) return b;
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  } catch {
    return b;
  }
  const data = Buffer.from(b.subarray(8 + n));
  const names = Object.keys(header).filter((k) => k !== '__metadata__' && Array.isArray(header[k]?.data_offsets));
  if (!names.length) return b;
  if (rng.uniform() < 0.5 && names.length >= 2) {
    // a second tensor's bytes moved over the first's (its size kept: only the overlap is wrong)
    const [a, c] = [pick(rng, names), pick(rng, names)];
    if (a === c) return b;
    const [s0, e0] = header[a].data_offsets;
    const [s1, e1] = header[c].data_offsets;
    const start = Math.min(Math.max(0, s0 + rng.int(Math.max(1, e0 - s0))), Math.max(0, data.length - (e1 - s1)));
    header[c].data_offsets = [start, start + (e1 - s1)];
  } else {
    const t = header[pick(rng, names)];
    const [s0, e0] = t.data_offsets;
    if (!(e0 - s0 >= 4) || t.dtype !== 'F32' || e0 > data.length) return b;
    pick(rng, NONFINITE_F32).copy(data, s0 + 4 * rng.int((e0 - s0) >> 2));
  }
  return safetensorsBytes(header, data);
}

/** The repeated keys of a .npy header (by quoted name), or null. */
function npyRepeatedKey(b: Buffer): string | null {
  const text = b.toString('latin1', 0, Math.min(b.length, 70000));
  const j = text.indexOf('}');
  const head = text.slice(0, j < 0 ? text.length : j);
  for (const k of ['descr', 'fortran_order', 'shape']) if ((head.match(new RegExp(`['"]${k}['"]\\s*:`, 'g')) ?? []).length > 1) return k;
  return null;
}

/** Two tensors of a safetensors header whose data_offsets overlap, or null. */
function safetensorsOverlap(b: Buffer): string | null {
  try {
    const n = Number(b.readBigUInt64LE(0));
    const h = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
    const spans = Object.entries(h)
      .filter(([k, v]) => k !== '__metadata__' && Array.isArray(v?.data_offsets) && v.data_offsets[1] > v.data_offsets[0])
      .map(([k, v]) => [v.data_offsets![0], v.data_offsets![1], k] as const);
    for (const x of spans) for (const y of spans) if (x !== y && x[0] < y[1] && y[0] < x[1]) return `${x[2]} and ${y[2]}`;
  } catch {
    // not a header the oracle can read: the reader decides
  }
  return null;
}

const nonFiniteIn = (tensors: Map<string, { data: Float32Array }>): string | null => {
  for (const [k, v] of tensors) for (let i = 0; i < v.data.length; i++) if (!Number.isFinite(v.data[i])) return `tensor ${k} holds ${v.data[i]} at ${i}`;
  return null;
};

const fin = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);
const segProblem = (seg: unknown, gt: boolean): string | null => {
  if (!Array.isArray(seg) || seg.length !== 2 || !seg.every(fin)) return `segment ${JSON.stringify(seg)} is not two finite numbers`;
  if (seg[0] > seg[1]) return `segment ${JSON.stringify(seg)} is reversed`;
  if (gt && seg[0] < 0) return `ground-truth segment ${JSON.stringify(seg)} starts before 0`;
  return null;
};
const first = (xs: (string | null)[]): string | null => xs.find((x) => x) ?? null;

/** A JSON file as JSON.parse reads it (a BOM dropped), or undefined when it does not parse. */
function parseJsonFile(file: string): unknown {
  const s = fs.readFileSync(file, 'utf8');
  try {
    return JSON.parse(s.charCodeAt(0) === 0xfeff ? s.slice(1) : s);
  } catch {
    return undefined;
  }
}
const objectAt = (x: unknown, ...keys: string[]): Record<string, unknown> | null => {
  for (const k of keys) {
    if (!x || typeof x !== 'object' || Array.isArray(x) || !Object.hasOwn(x, k)) return null;
    x = (x as Record<string, unknown>)[k];
  }
  return x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : null;
};
/** An accepted result's names against the file's own keys (`want`; null: not comparable): none lost, none added. */
const keysProblem = (what: string, got: string[], want: string[] | null): string | null =>
  want && got.join('\u0000') !== want.join('\u0000') ? `${what} ${JSON.stringify(got)}, but the file has ${JSON.stringify(want)}` : null;
/** Names that are Object.prototype's members, for the seeds. */
const HOSTILE = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
const ambiguousProblem = (m: Map<string, [number, number][]>): string | null =>
  first([...m.values()].flat().map(([a, b]) => (fin(a) && fin(b) && a >= 0 && a <= b ? null : `ambiguous segment [${a}, ${b}]`)));
/** Video names that would be paths, as a hostile data file holds them. */
const PATH_NAMES = ['../x', '../../../x', '..', '.', 'a/b', 'a\\b', '..\\x', '/etc/passwd', 'C:x', 'x\u0000y', 'x/..', '~/x', './x'];

/** A line of `text` (or its field `field` of a csv line) replaced by a name that would be a path. */
function pathNameIn(b: Buffer, rng: Rng, field?: number): Buffer {
  const lines = b.toString('utf8').split('\n');
  const i = field === undefined ? rng.int(lines.length) : 1 + rng.int(Math.max(1, lines.length - 2));
  const name = pick(rng, PATH_NAMES);
  if (field === undefined) lines[i] = rng.uniform() < 0.5 ? name : `${lines[i]}${name}`;
  else if (lines[i] !== undefined) {
    const cells = lines[i].split(',');
    if (cells.length > field) cells[field] = name;
    lines[i] = cells.join(',');
  }
  return Buffer.from(lines.join('\n'), 'utf8');
}

/** Names a reader accepted that would not be a file in their folder. */
const pathProblem = (names: string[], dir: string): string | null =>
  first(names.map((n) => (nameProblem(n) ? `accepted the name ${JSON.stringify(n)}` : path.dirname(videoFile(dir, n, '.npy', 'fuzz')) === dir ? null : `the name ${JSON.stringify(n)} makes a path outside ${dir}`)));

const shapeProblem = (shape: number[], n: number): string | null =>
  !shape.every((d) => Number.isInteger(d) && d >= 0) ? `shape ${JSON.stringify(shape)}` : shape.reduce((a, b) => a * b, 1) !== n ? `shape ${JSON.stringify(shape)} holds ${n} values` : null;

export function targets(tmp: string): Target[] {
  const gt = {
    database: {
      v1: { subset: 'Test', duration: 30.5, fps: 30, annotations: [{ label: 'A', segment: [1.5, 4] }, { label: 'B', segment: [10, 12.25] }] },
      v2: { subset: 'Test', duration: 12, fps: 25, annotations: [{ label: 'A', segment: [0, 3] }] },
      v3: { subset: 'Train', duration: 20, fps: 30, annotations: [] },
    },
  };
  const results = { version: 'VERSION 1.3', results: { v1: [{ label: 'A', score: 0.9, segment: [1, 4] }, { label: 'B', score: 0.3, segment: [-0.5, 12] }], v2: [{ label: 'A', score: 0.5, segment: [0, 2] }] } };
  const proposals = {
    train: { v3: { PP: { A: [[1, 2, 0.5]] }, RP: { A: [[1, 2, 0.5], null] }, NP: [[5, 9, -0.1]] } },
    test: { v1: { PP: { A: [[1, 4, 0.8]], B: [[10, 11, 0.2]] } } },
  };
  const csv = 'class,class_index,start_frame,stop_frame,video_id,point\nA,0,45,120,v1,80\nB,1,300,367,v1,330\nA,0,0,75,v2,40\n';
  // the same with videos and classes named after Object.prototype's members (Object.fromEntries: "__proto__" an own key)
  const [H0, H1, H2, H3] = HOSTILE;
  const hostileGt = { database: Object.fromEntries([
    [H0, { subset: 'Test', duration: 30.5, fps: 30, annotations: [{ label: H1, segment: [1.5, 4] }, { label: H0, segment: [10, 12.25] }] }],
    [H1, { subset: 'Test', duration: 12, fps: 25, annotations: [{ label: H2, segment: [0, 3] }] }],
    [H2, { subset: 'Train', duration: 20, fps: 30, annotations: [] }],
    [H3, { subset: H0, duration: 20, fps: 30, annotations: [{ label: H3, segment: [0, 3] }] }],
  ]) };
  const hostileResults = { results: Object.fromEntries([[H0, [{ label: H1, score: 0.9, segment: [1, 4] }]], [H1, [{ label: H0, score: 0.3, segment: [0, 2] }]], [H2, []]]) };
  const hostileProposals = {
    train: Object.fromEntries([[H0, { PP: Object.fromEntries([[H1, [[1, 2, 0.5]]], [H0, [[3, 4, 0.1]]]]), RP: Object.fromEntries([[H1, [[1, 2, 0.5], null]]]), NP: [[5, 9, -0.1]] }]]),
    test: Object.fromEntries([[H1, { PP: Object.fromEntries([[H2, [[1, 4, 0.8]]], [H0, [[10, 11, 0.2]]]]) }], [H3, { PP: {} }]]),
  };
  const torch = ['stage2.pt', 'stage1.pt', 'stage2_legacy.pt'].map((f) => fs.readFileSync(path.join(FIXTURES, 'torch', f)));
  // the split lists the csv target's gt command reads (the test split is drawn from the training videos)
  const splitTrain = path.join(tmp, 'split_train.txt');
  const splitTest = path.join(tmp, 'split_test.txt');
  fs.writeFileSync(splitTrain, 'v1\nv2\n');
  fs.writeFileSync(splitTest, '');
  return [
    { name: 'npy', ext: '.npy', text: false, seeds: [npySeed([5, 4]), npySeed([3]), npySeed([2, 3], '<f8'), npySeed([4, 2], '<f2'), npySeed([0, 4])], read: (f) => {
      const a = readNpy(f);
      return { bytes: bytesOf(a), problem: shapeProblem(a.shape, a.data.length) };
    } },
    { name: 'npy-header', ext: '.npy', text: false, seeds: [npySeed([5, 4]), npySeed([2, 3], '<f8')], read: (f) => (readNpyHeader(f), 0) },
    { name: 'safetensors', ext: '.safetensors', text: false, seeds: [safetensorsSeed(tmp)], read: (f) => {
      const st = loadSafetensors(f);
      return {
        bytes: bytesOf(st.tensors),
        problem: first([...st.tensors].map(([k, v]) => shapeProblem(v.shape, v.data.length) && `tensor ${k}: ${shapeProblem(v.shape, v.data.length)}`).concat(Object.values(st.metadata).every((v) => typeof v === 'string') ? null : 'metadata not strings')),
      };
    } },
    { name: 'torch', ext: '.pt', text: false, seeds: torch, read: (f) => bytesOf(new Map([...readTorchCheckpoint(f).tensors].map(([k, v]) => [k, v.data]))) },
    // hostile containers: an entry twice, non-finite weights, hostile rebuild arguments and BUILD states
    { name: 'torch containers', ext: '.pt', text: false, seeds: [torchArchive([{ name: 'a.weight', values: [1, 2, 3, 4, 5, 6], size: [2, 3], stride: [3, 1] }, { name: 'b', values: [0.5, -0.25], dtype: 'float64' }]), torch[0]],
      mutate: mutateTorchContainer,
      read: (f) => {
        const names = zipNames(oracleBytes(f));
        const twice = names?.find((n, i) => names.indexOf(n) !== i);
        const c = readTorchCheckpoint(f);
        return { bytes: bytesOf(new Map([...c.tensors].map(([k, v]) => [k, v.data]))), problem: twice ? `accepted an archive with two entries named ${twice}` : nonFiniteIn(c.tensors) };
      } },
    { name: 'npy keys', ext: '.npy', text: false, seeds: [npySeed([5, 4]), npySeed([3])], mutate: mutateNpyKeys, read: (f) => {
      const key = npyRepeatedKey(oracleBytes(f));
      const a = readNpy(f);
      return { bytes: bytesOf(a), problem: key ? `accepted a header naming '${key}' twice` : shapeProblem(a.shape, a.data.length) };
    } },
    { name: 'safetensors containers', ext: '.safetensors', text: false, seeds: [safetensorsSeed(tmp)], mutate: mutateSafetensorsContainer, read: (f) => {
      const overlap = safetensorsOverlap(oracleBytes(f));
      const st = loadSafetensors(f);
      return { bytes: bytesOf(st.tensors), problem: overlap ? `accepted overlapping tensors ${overlap}` : nonFiniteIn(st.tensors) };
    } },
    { name: 'gt (eval)', ext: '.json', text: true, seeds: [json(gt), json(hostileGt)], read: (f) => {
      const g = loadGroundTruth(f, 'Test');
      const db = objectAt(parseJsonFile(f), 'database');
      const want = db && Object.keys(db).filter((v) => objectAt(db, v)?.subset === 'Test');
      return { bytes: 0, problem: keysProblem('videos', Object.keys(g.videos), want) ?? first(Object.values(g.videos).flatMap((segs) => segs.map((x) => segProblem(x.segment, true) ?? (x.label ? null : 'empty label')))) };
    } },
    { name: 'gt (dataset)', ext: '.json', text: true, seeds: [json(gt), json(hostileGt)], read: (f) => {
      // as the dataset loader and pstal check read it: duration and fps required
      const g = requireTiming(readGroundTruth(f), f);
      const db = objectAt(parseJsonFile(f), 'database');
      return { bytes: 0, problem: keysProblem('videos', [...g.keys()], db && Object.keys(db)) ?? first([...g.values()].flatMap((v) => [fin(v.duration) && v.duration >= 0 ? null : `duration ${v.duration}`, fin(v.fps) && v.fps > 0 ? null : `fps ${v.fps}`, ...v.annotations.map((a) => (Array.isArray(a.segment) && a.segment.length === 2 && a.segment.every(fin) ? null : `segment ${JSON.stringify(a.segment)}`))])) };
    } },
    { name: 'results', ext: '.json', text: true, seeds: [json(results), json(hostileResults)], read: (f) => {
      const r = loadResults(f);
      const raw = objectAt(parseJsonFile(f), 'results');
      return { bytes: 0, problem: keysProblem('videos', Object.keys(r), raw && Object.keys(raw)) ?? first(Object.values(r).flatMap((ds) => ds.map((d) => segProblem(d.segment, false) ?? (fin(d.score) ? null : `score ${d.score}`)))) };
    } },
    { name: 'proposals', ext: '.json', text: true, seeds: [json(proposals), json(hostileProposals)], read: (f) => {
      const p = readProposals(f);
      const raw = parseJsonFile(f);
      const names: (string | null)[] = [];
      for (const s of ['train', 'test'] as const) {
        const rs = objectAt(raw, s);
        names.push(keysProblem(`${s} videos`, Object.keys(p[s]), rs && Object.keys(rs)));
        for (const [v, r] of Object.entries(p[s])) {
          const pp = objectAt(raw, s, v, 'PP');
          names.push(keysProblem(`${s}.${v}.PP classes`, Object.keys(r.PP), pp && Object.keys(pp)));
        }
      }
      const spans: unknown[] = [];
      const unpack = (a: Float64Array): void => {
        for (let i = 0; i < a.length; i += 3) spans.push([...a.subarray(i, i + 3)]);
      };
      for (const r of Object.values(p.train)) {
        Object.values(r.PP).forEach(unpack);
        for (const l of Object.values(r.RP)) spans.push(...l.filter((x) => x !== null));
        unpack(r.NP);
      }
      for (const r of Object.values(p.test)) Object.values(r.PP).forEach(unpack);
      return { bytes: 0, problem: first(names) ?? first(spans.map((x) => (Array.isArray(x) && x.length === 3 && x.every(fin) && x[0] <= x[1] ? null : `span ${JSON.stringify(x)}`))) };
    } },
    { name: 'point csv', ext: '.csv', text: true, seeds: [Buffer.from(csv)], read: (f) => {
      const rows = readPointCsv(f);
      return { bytes: 0, problem: rows.length === 0 ? 'no rows' : first(rows.map((r) => (fin(r.frame) && r.frame >= 0 && r.video && r.label && r.label !== 'class' ? null : `row ${JSON.stringify(r)}`))) };
    } },
    { name: 'split list', ext: '.txt', text: true, seeds: [Buffer.from('v1\nv2\nvideo_test_0000004\n')], read: (f) => (readSplit(f), 0) },
    { name: 'split names (paths)', ext: '.txt', text: true, seeds: [Buffer.from('v1\nv2\nvideo_test_0000004\n')], mutate: (b, rng) => pathNameIn(b, rng), read: (f) => ({ bytes: 0, problem: pathProblem(readSplit(f), path.join(tmp, 'features')) }) },
    { name: 'csv video ids (gt)', ext: '.csv', text: true, seeds: [Buffer.from(csv)], mutate: (b, rng) => pathNameIn(b, rng, 4), read: (f) => {
      const r = groundTruthFromPoints(f, splitTrain, splitTest, { fps: 30, holdout: 0.5, minDuration: 0 });
      return { bytes: 0, problem: pathProblem([...r.splits.train, ...r.splits.test, ...r.gt.keys()], path.join(tmp, 'features')) };
    } },
    { name: 'ambiguous (dataset)', ext: '.txt', text: true, seeds: [Buffer.from('v1 1.5 3.0\nv2 0 1\n')], read: (f) => ({ bytes: 0, problem: ambiguousProblem(readAmbiguous(f)) }) },
    { name: 'ambiguous (eval)', ext: '.txt', text: true, seeds: [Buffer.from('v1 1.5 3.0\nv2 0 1\n')], read: (f) => ({ bytes: 0, problem: ambiguousProblem(loadAmbiguous(f)) }) },
    { name: 'yaml config', ext: '.yaml', text: true, seeds: ['gtea.yaml', 'thumos14.yaml'].map((c) => fs.readFileSync(path.join(CONFIGS, c))), read: (f) => {
      const c = loadConfig(f);
      const lists = [c.tiou, c.stage1.casThresholds, c.stage1.agnosticThresholds];
      return { bytes: lists.reduce((a, l) => a + 8 * l.length, 0), problem: first(lists.map((l) => (l.length <= 1000 && l.every(fin) ? null : `a threshold list of ${l.length}`))) };
    } },
  ];
}

// ---- mutations -----------------------------------------------------------------------------------

const SPECIAL = ['NaN', 'Infinity', '-Infinity', '-1', '-5', '0', '1e300', '-1e300', '9007199254740993', '100000000', '1e-320', '"x"', 'null', 'true', '[]', '{}', '""', '0.5', '3'];
const NUMBER_RE = /-?\d+(\.\d+)?(e[-+]?\d+)?/gi;

function pick<T>(rng: Rng, xs: T[]): T {
  return xs[rng.int(xs.length)];
}

function mutateBytes(b: Buffer, rng: Rng): Buffer {
  const out = Buffer.from(b);
  const kind = rng.int(7);
  if (out.length === 0) return Buffer.from([rng.int(256)]);
  switch (kind) {
    case 0: { // bit flips
      const n = 1 + rng.int(8);
      for (let i = 0; i < n; i++) {
        const p = rng.int(out.length);
        out[p] ^= 1 << rng.int(8);
      }
      return out;
    }
    case 1: { // byte overwrites with interesting values
      const n = 1 + rng.int(4);
      for (let i = 0; i < n; i++) out[rng.int(out.length)] = pick(rng, [0, 0xff, 0x7f, 0x80, 0x20, 0x0a, 0x22, 0x2c, 0x5b, 0x7b, rng.int(256)]);
      return out;
    }
    case 2: // truncation
      return out.subarray(0, rng.int(out.length));
    case 3: { // insertion of random bytes
      const p = rng.int(out.length + 1);
      const ins = Buffer.from(Array.from({ length: 1 + rng.int(16) }, () => rng.int(256)));
      return Buffer.concat([out.subarray(0, p), ins, out.subarray(p)]);
    }
    case 4: { // a chunk repeated
      const a = rng.int(out.length);
      const len = 1 + rng.int(Math.min(64, out.length - a));
      const p = rng.int(out.length + 1);
      return Buffer.concat([out.subarray(0, p), out.subarray(a, a + len), out.subarray(p)]);
    }
    case 5: { // a chunk removed
      const a = rng.int(out.length);
      return Buffer.concat([out.subarray(0, a), out.subarray(Math.min(out.length, a + 1 + rng.int(32)))]);
    }
    default: // 8-byte little-endian length fields set huge (safetensors header length, zip sizes)
      if (out.length >= 8) {
        const p = rng.int(Math.max(1, out.length - 8));
        out.writeUInt32LE(pick(rng, [0xffffffff, 0x7fffffff, 0x10000000, out.length * 4, 0]), p);
      }
      return out;
  }
}

function mutateText(s: string, rng: Rng): string {
  const kind = rng.int(9);
  switch (kind) {
    case 0: { // a number replaced
      const nums = [...s.matchAll(NUMBER_RE)];
      if (!nums.length) return s + pick(rng, SPECIAL);
      const m = pick(rng, nums);
      return s.slice(0, m.index!) + pick(rng, SPECIAL) + s.slice(m.index! + m[0].length);
    }
    case 1: { // two adjacent numbers swapped (reversed segments, start/stop)
      const m = [...s.matchAll(/(-?[\d.]+)(\s*,\s*|\s+)(-?[\d.]+)/g)];
      if (!m.length) return s;
      const x = pick(rng, m);
      return s.slice(0, x.index!) + x[3] + x[2] + x[1] + s.slice(x.index! + x[0].length);
    }
    case 2: return '\ufeff' + s; // BOM
    case 3: return s.replace(/\n/g, '\r\n'); // CRLF
    case 4: { // a line repeated
      const lines = s.split('\n');
      const i = rng.int(lines.length);
      lines.splice(i, 0, lines[i]);
      return lines.join('\n');
    }
    case 5: { // a line dropped
      const lines = s.split('\n');
      lines.splice(rng.int(lines.length), 1);
      return lines.join('\n');
    }
    case 6: { // a string value or key replaced (unknown classes, videos, fields)
      const strs = [...s.matchAll(/"[^"\n]*"|[A-Za-z_][\w]*/g)];
      if (!strs.length) return s;
      const m = pick(rng, strs);
      const rep = pick(rng, ['"Z"', '""', 'Z', '"__proto__"', '"constructor"', '"toString"', '"database"', '"v1"', '"segment"', '"annotations"', 'num', '"\\u0000"']);
      return s.slice(0, m.index!) + rep + s.slice(m.index! + m[0].length);
    }
    case 7: { // an extra element in a list ([1,2] -> [1,2,3])
      const i = s.indexOf(']', rng.int(Math.max(1, s.length)));
      return i < 0 ? s : s.slice(0, i) + ', ' + pick(rng, SPECIAL) + s.slice(i);
    }
    default: return mutateBytes(Buffer.from(s, 'utf8'), rng).toString('utf8');
  }
}

/** Header-aware mutations of .npy and safetensors: huge shapes, wrong dtypes, bad offsets. */
function mutateHeader(b: Buffer, rng: Rng, target: string): Buffer | null {
  if (target.startsWith('npy')) {
    const text = b.toString('latin1');
    const i = text.indexOf('{');
    const j = text.indexOf('}');
    if (i < 0 || j < 0) return null;
    let head = text.slice(i, j + 1);
    if (rng.uniform() < 0.5) head = head.replace(/'shape': \([^)]*\)/, `'shape': (${pick(rng, ['4294967296, 4', '99999999999, 99999999', '-1, 4', '5, 4, 3', '', '5,', '0, 4', '1e9, 2', '5 4', '9007199254740993, 1'])})`);
    else head = head.replace(/'descr': '[^']*'/, `'descr': '${pick(rng, ['<i4', '>f4', '<f8', '|b1', '<c8', 'O', '<U3', '|f4', '<f2', '<f16', ''])}'`);
    if (rng.uniform() < 0.3) head = head.replace(/'fortran_order': \w+/, `'fortran_order': ${pick(rng, ['True', 'false', '1'])}`);
    // keep the header length field consistent half the time
    const body = text.slice(0, i) + head + text.slice(j + 1);
    return Buffer.from(body, 'latin1');
  }
  if (target === 'safetensors' && b.length > 8) {
    const n = Number(b.readBigUInt64LE(0));
    if (n > b.length - 8) return null;
    let h = b.subarray(8, 8 + n).toString('utf8');
    const choice = rng.int(4);
    if (choice === 0) h = h.replace(/"shape":\[[^\]]*\]/, `"shape":[${pick(rng, ['4294967296,4294967296', '-3,-4', '1e300', '3.5,2', '"3"', '9007199254740993'])}]`);
    else if (choice === 1) h = h.replace(/"dtype":"F32"/, `"dtype":"${pick(rng, ['I32', 'F64', 'BF16', 'F16', 'U8', 'constructor', ''])}"`);
    else if (choice === 2) h = h.replace(/"data_offsets":\[\d+,\d+\]/, `"data_offsets":[${pick(rng, ['0,1e300', '-8,40', '40,0', '0,4294967296', '"0",48'])}]`);
    else h = h.replace(/"__metadata__":\{[^}]*\}/, pick(rng, ['"__metadata__":null', '"__metadata__":{"state":5}', '"__metadata__":[]']));
    const hb = Buffer.from(h, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    return Buffer.concat([len, hb, b.subarray(8 + n)]);
  }
  return null;
}

/** A JSON member with a simple value given twice in its object ({"a": 1} -> {"a": 1, "a": 1}). */
function duplicateMember(s: string, rng: Rng): string {
  const members = [...s.matchAll(/"[^"\n]*":\s*("[^"\n]*"|-?[\d.eE+-]+|true|false|null|\[[^[\]{}]*\])/g)];
  if (!members.length) return s;
  const m = pick(rng, members);
  const end = m.index! + m[0].length;
  return s.slice(0, end) + ', ' + m[0] + s.slice(end);
}

export function mutate(t: Target, seed: Buffer, rng: Rng): Buffer {
  let b = seed;
  // a target's own mutation (names that would be paths), then the common ones half the time
  if (t.mutate) {
    b = t.mutate(b, rng);
    if (rng.uniform() < 0.5) return b;
  }
  const rounds = 1 + (rng.uniform() < 0.3 ? rng.int(3) : 0);
  for (let r = 0; r < rounds; r++) {
    // a target's own mutations (hostile containers) half the time; the others draw as before
    if (t.mutate && rng.uniform() < 0.5) {
      b = t.mutate(b, rng);
      continue;
    }
    const u = rng.uniform();
    const h = u < 0.3 ? mutateHeader(b, rng, t.name) : null;
    if (h) b = h;
    else if (t.ext === '.json' && u >= 0.85 && u < 0.9) b = Buffer.from(duplicateMember(b.toString('utf8'), rng), 'utf8');
    else if (t.text && u < 0.85) b = Buffer.from(mutateText(b.toString('utf8'), rng), 'utf8');
    else b = mutateBytes(b, rng);
  }
  return b;
}

// ---- the oracle ------------------------------------------------------------------------------------

const NON_REGULAR = ['a FIFO', 'a link to a FIFO', 'a link to /dev/zero', 'a folder', 'a dangling link'] as const;

/**
 * About one case in 50 (its own draw: the other cases' inputs do not change) makes `file` a
 * non-regular file instead of writing the input; returns what it made, or null. POSIX only.
 */
function nonRegular(file: string, seed: number, i: number): string | null {
  if (process.platform === 'win32') return null;
  const rng = new Rng((seed * 7919 + i * 104729 + 17) >>> 0);
  if (rng.uniform() >= 0.02) return null;
  const kind = pick(rng, [...NON_REGULAR]);
  const fifo = (f: string): void => {
    if (spawnSync('mkfifo', [f]).status !== 0) throw new Error(`mkfifo ${f} failed`);
  };
  const aside = `${file}.target`;
  fs.rmSync(aside, { recursive: true, force: true });
  if (kind === 'a FIFO') fifo(file);
  else if (kind === 'a link to a FIFO') (fifo(aside), fs.symlinkSync(aside, file));
  else if (kind === 'a link to /dev/zero') fs.symlinkSync('/dev/zero', file);
  else if (kind === 'a folder') fs.mkdirSync(file);
  else fs.symlinkSync(aside, file);
  return kind;
}

/** The path of a duplicate key in valid JSON text (a BOM allowed), or null. */
function duplicateIn(text: string): string | null {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    JSON.parse(s);
  } catch {
    return null;
  }
  return findDuplicateKey(s)?.path ?? null;
}

export interface FuzzFailure {
  target: string;
  caseIndex: number;
  why: string;
  /** the input, base64 (write it to a file to reproduce) */
  input: string;
}

export interface FuzzReport {
  cases: number;
  byTarget: Record<string, { cases: number; accepted: number; rejected: number }>;
  failures: FuzzFailure[];
  slowest: { target: string; caseIndex: number; ms: number };
  seconds: number;
}

/** Runs `cases` cases of every target (round-robin), seeded; stops collecting after `maxFailures`. */
export function fuzz(o: { cases: number; seed: number; tmp: string; maxFailures?: number; only?: string[]; log?: (s: string) => void; progress?: Int32Array; start?: number }): FuzzReport {
  fs.mkdirSync(o.tmp, { recursive: true });
  const all = targets(o.tmp).filter((t) => !o.only || o.only.some((n) => t.name.includes(n)));
  const report: FuzzReport = { cases: 0, byTarget: {}, failures: [], slowest: { target: '', caseIndex: -1, ms: 0 }, seconds: 0 };
  const t0 = Date.now();
  for (const t of all) report.byTarget[t.name] = { cases: 0, accepted: 0, rejected: 0 };
  for (let i = o.start ?? 0; i < o.cases; i++) {
    if (o.progress) Atomics.store(o.progress, 0, i);
    const t = all[i % all.length];
    // each case has its own stream: case i is reproducible alone
    const rng = new Rng((o.seed * 1000003 + i) >>> 0);
    const seed = t.seeds[rng.int(t.seeds.length)];
    const input = mutate(t, seed, rng);
    const file = path.join(o.tmp, `case-${t.name.replace(/\W+/g, '_')}${t.ext}`);
    fs.rmSync(file, { recursive: true, force: true }); // the last case's file may be a FIFO or a folder
    const special = nonRegular(file, o.seed, i);
    if (!special) fs.writeFileSync(file, input);
    const stat = report.byTarget[t.name];
    stat.cases++;
    report.cases++;
    const fail = (why: string) => {
      if (report.failures.length < (o.maxFailures ?? 50)) report.failures.push({ target: t.name, caseIndex: i, why: special ? `(${special}) ${why}` : why, input: special ?? input.toString('base64') });
    };
    const c0 = process.hrtime.bigint();
    try {
      const got = t.read(file);
      const bytes = typeof got === 'number' ? got : got.bytes;
      stat.accepted++;
      if (special) fail(`accepted ${special}`);
      else if (bytes > 8 * input.length + 4096) fail(`accepted, but its result takes ${bytes} bytes from a file of ${input.length}`);
      if (typeof got !== 'number' && got.problem) fail(`accepted a bad value: ${got.problem}`);
      const dup = t.ext === '.json' ? duplicateIn(input.toString('utf8')) : null;
      if (dup) fail(`accepted a duplicate key ${dup}`);
    } catch (e) {
      stat.rejected++;
      if (!(e instanceof Error)) fail(`threw a non-Error: ${String(e)}`);
      // a TypeError or RangeError is a crash inside a reader; the readers' own errors name the file
      else if (e.constructor !== Error && !(e.name === 'Error') && !(e instanceof DuplicateKeyError) && !(e instanceof FormatError)) fail(`threw ${e.constructor.name}: ${e.message.slice(0, 300)}`);
      else if (!e.message.includes(file)) fail(`error does not name the file: ${e.message.slice(0, 300)}`);
    }
    const ms = Number(process.hrtime.bigint() - c0) / 1e6;
    if (ms > report.slowest.ms) report.slowest = { target: t.name, caseIndex: i, ms };
    if (ms > 2000) fail(`took ${ms.toFixed(0)} ms (a hang?)`);
    if (o.log && (i + 1) % 10000 === 0) o.log(`${i + 1} cases, ${report.failures.length} failures, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  report.seconds = (Date.now() - t0) / 1000;
  return report;
}

/** Command-line arguments: mutated argv for `run` and `eval`; every rejection is a usage error (CliError). */
export function fuzzArgs(o: { cases: number; seed: number }): FuzzFailure[] {
  const failures: FuzzFailure[] = [];
  const base = [
    ['run', RUN_OPTIONS, ['--data', 'd', '--out', 'o', '--iterations', '10', '--seed', '3', '--resume', '--dim', '16']],
    ['eval', EVAL_OPTIONS, ['--gt', 'g.json', '--pred', 'p.json', '--subset', 'Test', '--tiou', '0.1:0.7:0.1']],
  ] as const;
  const noise = ['--', '-', '--=', '--iterations=', '--iterations', 'NaN', 'Infinity', '-1', '1e309', '--dim=0x10', '--help=no', '--resume=false', '--__proto__', '--constructor', '--toString', '\u0000', '', ' ', '--seed', '--seed=1=2', '--tiou'];
  const log = console.log;
  for (let i = 0; i < o.cases; i++) {
    const rng = new Rng((o.seed * 7919 + i) >>> 0);
    const [cmd, spec, args] = base[i % base.length];
    const argv: string[] = [...args];
    const n = 1 + rng.int(4);
    for (let k = 0; k < n; k++) {
      const op = rng.int(3);
      if (op === 0) argv.splice(rng.int(argv.length + 1), 0, pick(rng, noise));
      else if (op === 1 && argv.length) argv.splice(rng.int(argv.length), 1);
      else if (argv.length) argv[rng.int(argv.length)] = pick(rng, noise);
    }
    console.log = () => undefined; // --help prints
    try {
      const parsed = parseArgs(cmd, argv, spec as never);
      if (parsed && cmd === 'run') checkNumericOptions(parsed);
      // "--constructor x" or "--__proto__" accepted as an option of Object.prototype's
      const extra = parsed ? Object.keys(parsed).filter((k) => !Object.hasOwn(spec, k)) : [];
      if (extra.length) failures.push({ target: `args ${cmd}`, caseIndex: i, why: `accepted unknown option(s) ${extra.map((k) => `--${k}`).join(', ')}`, input: JSON.stringify(argv) });
    } catch (e) {
      if (!(e instanceof CliError)) failures.push({ target: `args ${cmd}`, caseIndex: i, why: `${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`, input: JSON.stringify(argv) });
    } finally {
      console.log = log;
    }
  }
  return failures;
}

/**
 * fuzz() in a worker thread under a watchdog: a case that runs longer than `hangMs` (an infinite
 * loop in a reader blocks its thread, so no in-thread timer can see it) is reported as a hang with
 * its target and case index, the worker is stopped and the fuzzing goes on with the next case.
 */
export async function fuzzWithWatchdog(o: { cases: number; seed: number; tmp: string; maxFailures?: number; only?: string[]; hangMs?: number; log?: (s: string) => void }): Promise<FuzzReport> {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { Worker } = require('worker_threads') as typeof import('worker_threads');
  const hangMs = o.hangMs ?? 10000;
  const total: FuzzReport = { cases: 0, byTarget: {}, failures: [], slowest: { target: '', caseIndex: -1, ms: 0 }, seconds: 0 };
  const t0 = Date.now();
  let start = 0;
  while (start < o.cases) {
    // [0]: the case in progress; [1]: 1 once the worker has loaded its modules (start-up, which
    // takes ts-node compiles and can take tens of seconds on a loaded machine, is not a case's time)
    const shared = new Int32Array(new SharedArrayBuffer(8));
    shared[0] = start;
    const code = `
      require('ts-node').register({ transpileOnly: true });
      const { workerData, parentPort } = require('worker_threads');
      const { fuzz } = require(${JSON.stringify(__filename)});
      Atomics.store(workerData.shared, 1, 1);
      const r = fuzz({ ...workerData.o, progress: workerData.shared, start: workerData.start });
      parentPort.postMessage(r);`;
    const w = new Worker(code, { eval: true, workerData: { o: { cases: o.cases, seed: o.seed, tmp: o.tmp, maxFailures: o.maxFailures, only: o.only }, shared, start } });
    const r = await new Promise<FuzzReport | { hang: number }>((resolve, reject) => {
      let last = -1;
      let since = Date.now();
      const born = Date.now();
      const timer = setInterval(() => {
        const now = Atomics.load(shared, 0);
        if (Atomics.load(shared, 1) === 0) {
          since = Date.now(); // still starting up
          if (Date.now() - born > 300000) {
            clearInterval(timer);
            reject(new Error('fuzz: the worker did not start in 5 minutes'));
          }
        } else if (now !== last) {
          last = now;
          since = Date.now();
          if (o.log && now % 10000 === 0 && now > 0) o.log(`${now} cases`);
        } else if (Date.now() - since > hangMs) {
          clearInterval(timer);
          void w.terminate();
          resolve({ hang: now });
        }
      }, 100);
      w.once('message', (m: FuzzReport) => {
        clearInterval(timer);
        resolve(m);
      });
      w.once('error', (e) => {
        clearInterval(timer);
        reject(e);
      });
    });
    if ('hang' in r) {
      const names = targets(o.tmp).filter((t) => !o.only || o.only.some((n) => t.name.includes(n))).map((t) => t.name);
      total.failures.push({ target: names[r.hang % names.length], caseIndex: r.hang, why: `no result after ${hangMs} ms (a hang)`, input: '' });
      total.cases += r.hang - start + 1;
      start = r.hang + 1;
      continue;
    }
    total.cases += r.cases;
    for (const [k, v] of Object.entries(r.byTarget)) {
      const s = (total.byTarget[k] ??= { cases: 0, accepted: 0, rejected: 0 });
      s.cases += v.cases;
      s.accepted += v.accepted;
      s.rejected += v.rejected;
    }
    total.failures.push(...r.failures);
    if (r.slowest.ms > total.slowest.ms) total.slowest = r.slowest;
    start = o.cases;
  }
  total.seconds = (Date.now() - t0) / 1000;
  return total;
}
