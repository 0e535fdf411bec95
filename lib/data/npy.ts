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

export { halfToFloat } from '../io/half'; // part of the data API since it was defined here

export interface NpyArray {
  data: Float32Array;
  shape: number[];
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

/** Parses the header's Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (T, D), } */
function parseHeader(file: string, text: string): { descr: string; fortran: boolean; shape: number[] } {
  const bad = (why: string): never => {
    throw new Error(`${file}: not a valid .npy file: ${why} (header ${JSON.stringify(text.trim())})`);
  };
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1] ?? bad("no 'descr'");
  const fo = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1] ?? bad("no 'fortran_order'");
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1] ?? bad("no 'shape'");
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length)
    .map((s) => (/^\d+L?$/.test(s) ? parseInt(s, 10) : bad(`shape entry '${s}' is not an integer`)));
  return { descr, fortran: fo === 'True', shape };
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
 * Features must be finite: the first NaN/Inf of a [T, D] array is an Error naming the file, the row
 * (snippet) and column, and how many there are, since one NaN poisons every weight it reaches.
 */
export function assertFiniteFeatures(file: string, data: Float32Array, D: number): void {
  let first = -1;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x - x !== 0) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (first >= 0) {
    const row = Math.floor(first / Math.max(1, D));
    throw new Error(
      `${file}: features hold ${count} non-finite value(s) (NaN or Inf); the first, ${data[first]}, at row (snippet) ${row}, column ${first - row * D}. ` +
        `Fix or re-extract this video's features (one NaN spreads to every weight it reaches)`,
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
