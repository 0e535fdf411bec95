/**
 * npy.ts: NumPy .npy files, our own reader and writer (format versions 1.0, 2.0 and 3.0).
 * Read: little-endian float32, float16 and float64 (converted to float32), C order, any rank.
 * Fortran order, other dtypes, big-endian data, a bad header or a truncated file each give an
 * error naming the file. Write: version 1.0, '<f4', C order, atomically (temporary file + rename).
 * Only a regular file is read (a FIFO or a device such as /dev/zero is an error naming it), and
 * only the bytes its header declares: the header first, then exactly the data the shape needs.
 */
import * as fs from 'fs';
import { halfToFloat } from '../io/half';
import { openRegular, readAt, writeFileAtomic } from '../util/fs';
import { LIMITS } from '../util/limits';

export { halfToFloat } from '../io/half'; // part of the data API since it was defined here

export interface NpyArray {
  data: Float32Array;
  shape: number[];
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

/**
 * Parses the header's Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (T, D), }
 * strictly: exactly the three keys numpy writes, each once (a key given twice is read by numpy as
 * its last value and by a regular expression as its first: such a file is refused, not guessed).
 */
function parseHeader(file: string, text: string): { descr: string; fortran: boolean; shape: number[] } {
  const bad = (why: string): never => {
    throw new Error(`${file}: not a valid .npy file: ${why} (header ${JSON.stringify(text.trim().slice(0, 200))})`);
  };
  let i = 0;
  const ws = (): void => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const expect = (c: string): void => {
    ws();
    if (text[i] !== c) bad(`expected '${c}' at character ${i}`);
    i++;
  };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') return bad(`expected a quoted string at character ${i}`);
    const end = text.indexOf(q, i + 1);
    if (end < 0) return bad('an unterminated string');
    const v = text.slice(i + 1, end);
    if (v.includes('\\')) bad(`the string '${v}' holds an escape`);
    i = end + 1;
    return v;
  };
  const fields = new Map<string, string | boolean | number[]>();
  expect('{');
  for (;;) {
    ws();
    if (text[i] === '}') break;
    const key = str();
    if (fields.has(key)) bad(`the key '${key}' is given twice`);
    expect(':');
    ws();
    let value: string | boolean | number[];
    if (key === 'descr') value = str();
    else if (key === 'fortran_order') {
      const m = /^(True|False)\b/.exec(text.slice(i));
      if (!m) return bad("'fortran_order' is not True or False");
      value = m[1] === 'True';
      i += m[1].length;
    } else if (key === 'shape') {
      expect('(');
      const close = text.indexOf(')', i);
      if (close < 0) return bad("'shape' is not a tuple");
      const items = text.slice(i, close).split(',').map((x) => x.trim());
      if (items.length > 1 && items[items.length - 1] === '') items.pop(); // (5,) and (5, 4, )
      if (items.length === 1 && items[0] === '') items.pop(); // ()
      value = items.map((x) => (/^\d+L?$/.test(x) ? parseInt(x, 10) : bad(`shape entry '${x}' is not an integer`)));
      i = close + 1;
    } else return bad(`unknown key '${key}' (a .npy header holds 'descr', 'fortran_order' and 'shape')`);
    fields.set(key, value);
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') bad(`expected ',' or '}' at character ${i}`);
  }
  i++;
  ws();
  if (i !== text.length) bad('characters after the closing brace');
  if (!fields.has('descr')) bad("no 'descr'");
  if (!fields.has('fortran_order')) bad("no 'fortran_order'");
  if (!fields.has('shape')) bad("no 'shape'");
  return { descr: fields.get('descr') as string, fortran: fields.get('fortran_order') as boolean, shape: fields.get('shape') as number[] };
}

/**
 * The magic string, version, header dict and dtype of a .npy file from its first bytes (the whole
 * file, or just its head): where the data starts and how wide a value is. Errors name the file.
 */
function parsePreamble(file: string, buf: Buffer): { descr: string; shape: number[]; itemSize: number; dataStart: number } {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${file}: not a .npy file (bad magic string)`);
  const major = buf[6];
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new Error(`${file}: truncated .npy header`);
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else throw new Error(`${file}: unsupported .npy format version ${major}.${buf[7]} (1.0, 2.0 and 3.0 are read)`);
  if (offset + headerLen > buf.length) throw new Error(`${file}: truncated .npy header`);
  const header = buf.subarray(offset, offset + headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const { descr, fortran, shape } = parseHeader(file, header);
  if (fortran) throw new Error(`${file}: Fortran-order arrays are not supported; save it in C order (np.ascontiguousarray)`);
  const kinds: Record<string, number> = { '<f4': 4, '<f2': 2, '<f8': 8, '|f4': 4, '=f4': 4, '=f8': 8, '=f2': 2 };
  const itemSize = Object.hasOwn(kinds, descr) ? kinds[descr] : undefined;
  if (!itemSize) {
    const why = descr.startsWith('>') ? 'big-endian data is not supported' : 'only float32, float16 and float64 are read';
    throw new Error(`${file}: dtype '${descr}': ${why}`);
  }
  return { descr, shape, itemSize, dataStart: offset + headerLen };
}

/** Opens a .npy file for reading: a regular file only; errors name the file. */
function openNpy(file: string): { fd: number; size: number } {
  try {
    return openRegular(file);
  } catch (e) {
    const m = (e as Error).message;
    throw new Error(m.startsWith(file) ? m : `${file}: cannot read: ${m}`);
  }
}

/** The first bytes of an open .npy file: enough for any header this reader accepts. */
const HEAD_BYTES = 65536 + 12;

export function readNpy(file: string): NpyArray {
  const { fd, size } = openNpy(file);
  try {
    const head = readAt(fd, Math.min(size, HEAD_BYTES), 0);
    const { shape, itemSize, dataStart: start } = parsePreamble(file, head);
    const count = shape.reduce((a, b) => a * b, 1);
    const need = count * itemSize;
    // the size the header declares, checked before anything of that size is allocated
    if (size - start < need) throw new Error(`${file}: truncated: shape (${shape.join(', ')}) needs ${need} bytes of data, the file has ${size - start}`);
    const read = (into: Uint8Array): Buffer => {
      const b = readAt(fd, need, start, into);
      if (b.length < need) throw new Error(`${file}: truncated: shape (${shape.join(', ')}) needs ${need} bytes of data, the file has ${b.length} (it shrank while read)`);
      return b;
    };
    return { data: decode(read, count, itemSize), shape };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A .npy file's bytes already in memory (an upload): the checks and errors of readNpy, `name`
 * standing for the file in them. Shape and size are checked before anything is allocated.
 */
export function parseNpy(name: string, bytes: Uint8Array): NpyArray {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { shape, itemSize, dataStart: start } = parsePreamble(name, buf);
  const count = shape.reduce((a, b) => a * b, 1);
  const need = count * itemSize;
  if (buf.length - start < need) throw new Error(`${name}: truncated: shape (${shape.join(', ')}) needs ${need} bytes of data, the body has ${buf.length - start}`);
  if (buf.length - start > need) throw new Error(`${name}: ${buf.length - start - need} bytes after the data that shape (${shape.join(', ')}) holds`);
  const read = (into: Uint8Array): Buffer => {
    into.set(buf.subarray(start, start + need));
    return buf.subarray(start, start + need);
  };
  return { data: decode(read, count, itemSize), shape };
}

/** The values as float32, from `read` (which reads the data bytes, into an aligned buffer when given one). */
function decode(read: (into: Uint8Array) => Buffer, count: number, itemSize: number): Float32Array {
  let data: Float32Array;
  if (itemSize === 4) {
    // read straight into an aligned buffer (the data offset need not be a multiple of 4)
    data = new Float32Array(count);
    read(new Uint8Array(data.buffer));
  } else if (itemSize === 8) {
    const f64 = new Float64Array(count);
    read(new Uint8Array(f64.buffer));
    data = Float32Array.from(f64);
  } else {
    const u16 = new Uint16Array(count);
    read(new Uint8Array(u16.buffer));
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = halfToFloat(u16[i]);
  }
  return data;
}

export interface NpyHeader {
  shape: number[];
  descr: string;
  /** bytes per value */
  itemSize: number;
  /** the file's size and the size its header promises (header + data) */
  fileBytes: number;
  expectedBytes: number;
}

/**
 * The header of a .npy file without reading its data (a few hundred bytes): shape, dtype, and
 * whether the file is as long as the shape says. Errors as readNpy's, naming the file.
 */
export function readNpyHeader(file: string): NpyHeader {
  const { fd, size: fileBytes } = openNpy(file);
  try {
    const head = readAt(fd, Math.min(fileBytes, HEAD_BYTES), 0);
    const { descr, shape, itemSize, dataStart } = parsePreamble(file, head);
    const count = shape.reduce((a, b) => a * b, 1);
    return { shape, descr, itemSize, fileBytes, expectedBytes: dataStart + count * itemSize };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Features must be finite and within LIMITS.featureMagnitude (lib/util/limits.ts): the first NaN,
 * Inf or huge value of a [T, D] array is an Error naming the file, the row (snippet) and column,
 * and how many there are, since one NaN (or a 3e38 that overflows in the first layer) poisons every
 * weight it reaches.
 */
export function assertFiniteFeatures(file: string, data: Float32Array, D: number): void {
  const max = LIMITS.featureMagnitude.max;
  let first = -1;
  let count = 0;
  let huge = -1;
  let hugeCount = 0;
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x - x !== 0) {
      if (first < 0) first = i;
      count++;
    } else if (x > max || x < -max) {
      if (huge < 0) huge = i;
      hugeCount++;
    }
  }
  const at = (i: number): string => {
    const row = Math.floor(i / Math.max(1, D));
    return `at row (snippet) ${row}, column ${i - row * D}`;
  };
  if (first >= 0) {
    throw new Error(
      `${file}: features hold ${count} non-finite value(s) (NaN or Inf); the first, ${data[first]}, ${at(first)}. ` +
        `Fix or re-extract this video's features (one NaN spreads to every weight it reaches)`,
    );
  }
  if (huge >= 0) {
    throw new Error(
      `${file}: features hold ${hugeCount} value(s) beyond +-${max}; the first, ${data[huge]}, ${at(huge)}. ` +
        `A feature value must be ${`at most ${max} in magnitude`} (${LIMITS.featureMagnitude.what}): fix or re-extract this video's features`,
    );
  }
}

/** The bytes of a version-1.0 '<f4' C-order .npy file. */
export function encodeNpy(data: Float32Array, shape: number[]): Uint8Array[] {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`writeNpy: ${data.length} values do not fill shape (${shape.join(', ')})`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n'; // data aligned to 64 bytes, as numpy does
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return [pre, Buffer.from(header, 'latin1'), new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
}

export function writeNpy(file: string, data: Float32Array, shape: number[]): void {
  writeFileAtomic(file, encodeNpy(data, shape));
}
