/**
 * safetensors.ts: checkpoints in the safetensors format (an 8-byte little-endian header length,
 * a JSON header {name: {dtype, shape, data_offsets}, __metadata__}, then the raw data), with
 * PyTorch's parameter names, so a state dict exported from PyTorch with safetensors loads by
 * name. F32 is written; F32, F16, BF16 and F64 are read (converted to float32). Writes are atomic.
 * Reading refuses, naming the file and tensor, a non-finite value (a NaN, or an F64 beyond float32's
 * range: a checkpoint's weights are finite) and two tensors whose data_offsets overlap.
 */
import * as fs from 'fs';
import { Shape, Tensor, shapeSize } from '../tensor/tensor';
import { halfToFloat } from './half';
import { readRegularFile, writeFileAtomic } from '../util/fs';
import { findDuplicateKey } from '../util/json';

export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

export function saveSafetensors(
  file: string,
  tensors: Map<string, Tensor | StoredTensor>,
  metadata: Record<string, string> = {},
): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of [...tensors.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const data = t instanceof Tensor ? t.toArray() : t.data;
    const shape = [...t.shape];
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    parts.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  while (json.length % 8 !== 0) json += ' '; // data aligned to 8 bytes
  const jsonBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(jsonBytes.length));
  writeFileAtomic(file, [len, jsonBytes, ...parts]);
}

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

export function loadSafetensors(file: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readRegularFile(file); // a FIFO or a device is refused before any read
  } catch (e) {
    throw new Error(`${file}: cannot read checkpoint: ${(e as Error).message}`);
  }
  const bad = (why: string): never => {
    throw new Error(`${file}: not a valid safetensors file: ${why}`);
  };
  if (buf.length < 8) bad('shorter than its 8-byte header length');
  const n = Number(buf.readBigUInt64LE(0));
  if (n <= 0 || 8 + n > buf.length) bad(`header length ${n} does not fit a file of ${buf.length} bytes`);
  let header: Record<string, any>;
  const headerText = buf.subarray(8, 8 + n).toString('utf8');
  try {
    header = JSON.parse(headerText);
  } catch {
    return bad('the header is not JSON');
  }
  // a tensor named twice: JSON.parse would keep the last entry and drop the other without a word
  const dup = typeof header === 'object' && header !== null ? findDuplicateKey(headerText) : null;
  if (dup) bad(`the header names ${dup.path} twice`);
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return bad('the header is not a JSON object');
  const meta = (header as Record<string, unknown>).__metadata__ as Record<string, unknown> | undefined;
  if (meta !== undefined && (typeof meta !== 'object' || meta === null || Array.isArray(meta) || !Object.values(meta).every((v) => typeof v === 'string')))
    bad('__metadata__ is not an object of strings');
  const base = 8 + n;
  const tensors = new Map<string, StoredTensor>();
  const spans: [number, number, string][] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: off } = info ?? {};
    if (!(dtype in DTYPE_BYTES)) bad(`tensor '${name}' has unsupported dtype ${dtype} (F32, F16, BF16, F64 are read)`);
    if (!Array.isArray(shape) || !Array.isArray(off) || off.length !== 2) bad(`tensor '${name}' lacks shape or data_offsets`);
    if (!shape.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0)) bad(`tensor '${name}': shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!off.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0) || off[0] > off[1]) bad(`tensor '${name}': data_offsets ${JSON.stringify(off)} are not two increasing byte offsets`);
    const count = shapeSize(shape as Shape);
    if (off[1] - off[0] !== count * DTYPE_BYTES[dtype] || base + off[1] > buf.length)
      bad(`tensor '${name}' ${JSON.stringify(shape)} ${dtype}: data_offsets ${JSON.stringify(off)} do not match its size or the file`);
    spans.push([off[0], off[1], name]);
    const bytes = buf.subarray(base + off[0], base + off[1]);
    const data = new Float32Array(count);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) {
      if (dtype === 'F32') data[i] = dv.getFloat32(i * 4, true);
      else if (dtype === 'F64') data[i] = dv.getFloat64(i * 8, true);
      else if (dtype === 'BF16') {
        const tmp = new DataView(new ArrayBuffer(4));
        tmp.setUint32(0, dv.getUint16(i * 2, true) << 16, true);
        data[i] = tmp.getFloat32(0, true);
      } else data[i] = halfToFloat(dv.getUint16(i * 2, true));
    }
    // weights must be finite: a NaN, or an F64 beyond the float32 range (Inf once converted), poisons every output
    for (let i = 0; i < count; i++) {
      const v = data[i];
      if (v - v !== 0)
        throw new Error(`${file}: tensor '${name}' holds a non-finite value (${v} at flat index ${i}${dtype === 'F64' && !Number.isNaN(v) ? ', an F64 beyond the float32 range' : ''}); a checkpoint's weights must be finite numbers`);
    }
    tensors.set(name, { shape: shape as number[], data });
  }
  // two tensors over the same bytes: which one a reader takes is a matter of chance (the format forbids it)
  const filled = spans.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let reach = filled.length ? filled[0] : null;
  for (const span of filled.slice(1)) {
    if (span[0] < reach![1]) bad(`tensors '${reach![2]}' (data_offsets [${reach![0]}, ${reach![1]}]) and '${span[2]}' ([${span[0]}, ${span[1]}]) overlap`);
    if (span[1] > reach![1]) reach = span;
  }
  return { tensors, metadata: (meta as Record<string, string> | undefined) ?? {} };
}
