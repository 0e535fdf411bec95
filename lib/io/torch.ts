/**
 * torch.ts: reading PyTorch checkpoints as `torch.save(model.state_dict(), path)` writes them since
 * torch 1.6: a zip archive (entries stored, not compressed) holding
 *   <archive>/data.pkl        the state dict, pickled (protocol 2), tensors as calls of
 *                             torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
 *                             whose storages are persistent ids ('storage', torch.FloatStorage,
 *                             key, location, numel)
 *   <archive>/data/<key>      each storage's raw bytes, in the byte order of <archive>/byteorder
 *                             (little when absent)
 *   <archive>/version         the archive format version
 * The zip is read with fflate and the pickle with pickleparser; nothing in the pickle is executed:
 * every global it names resolves to an inert placeholder except the handful registered below
 * (OrderedDict, the tensor and parameter rebuild functions, storage types, `_codecs.encode`).
 *
 * Tensors are materialised as float32 in C order whatever their strides and storage offset
 * (views, transposes and slices saved as they are), from float32, float64, float16 and bfloat16
 * storages (64/16-bit floats converted as torch's `.float()` does: round to nearest even, or
 * exactly); integer and bool storages are read too (as numbers) so buffers such as BatchNorm's
 * num_batches_tracked do not stop a read. The legacy (pre-1.6) format and other files are
 * errors that say what the file is and what to do. Refused, naming the tensor: rebuild arguments
 * (storage, offset, size, stride, storage dtype) that are not what torch.save writes, also when a
 * later BUILD of the pickle changed them, and a weight that is not finite (a NaN, or a float64
 * beyond float32's range). An archive with two entries of one name (torch.load reads the first,
 * other readers the last) is refused. Every error names the file.
 */
import * as fs from 'fs';
import { unzipSync } from 'fflate';
import { Parser, NameRegistry } from 'pickleparser';
import { halfToFloat } from './half';
import type { StoredTensor } from './safetensors';
import { readRegularFile } from '../util/fs';

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface TorchTensor extends StoredTensor {
  /** the dtype it was saved in (data is float32 whatever it was) */
  dtype: TorchDtype;
}

export interface TorchCheckpoint {
  file: string;
  /** the state dict's tensors, in the checkpoint's order */
  tensors: Map<string, TorchTensor>;
  /** where the state dict was: '' at the top, or the key of the wrapping dict ('state_dict', 'model', ...) */
  wrapper: string;
  /** a 'module.' prefix (nn.DataParallel) removed from every name */
  strippedPrefix: string;
  /** <archive>/version ('3' for torch 1.6 to 2.x) */
  archiveVersion: string;
  byteorder: 'little' | 'big';
}

// ---- storage types and pickled objects -----------------------------------------------------

const STORAGE_TYPES: Record<string, { dtype: TorchDtype; bytes: number }> = {
  FloatStorage: { dtype: 'float32', bytes: 4 },
  DoubleStorage: { dtype: 'float64', bytes: 8 },
  HalfStorage: { dtype: 'float16', bytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2 },
  LongStorage: { dtype: 'int64', bytes: 8 },
  IntStorage: { dtype: 'int32', bytes: 4 },
  ShortStorage: { dtype: 'int16', bytes: 2 },
  CharStorage: { dtype: 'int8', bytes: 1 },
  ByteStorage: { dtype: 'uint8', bytes: 1 },
  BoolStorage: { dtype: 'bool', bytes: 1 },
};

class StorageRef {
  constructor(readonly type: string, readonly key: string, readonly location: string) {}
}

/** A tensor as the pickle describes it: a view (offset, size, stride in elements) of a storage. */
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}

/** The magic number the legacy (non-zip) torch.save format starts its pickle with. */
const LEGACY_MAGIC = Buffer.from([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

/** Keys under which training scripts commonly wrap a state dict. */
const WRAPPER_KEYS = ['state_dict', 'model_state_dict', 'model', 'net', 'network', 'module', 'state'];

const num = (x: unknown): number => (typeof x === 'bigint' ? Number(x) : (x as number));

function registry(): NameRegistry {
  const r = new NameRegistry();
  r.register('collections', 'OrderedDict', () => new Map());
  // the arguments are kept as given and checked once the tensor's name is known (checkRebuildArguments)
  const rebuild = (storage: unknown, offset: unknown, size: unknown, stride: unknown): TensorRef =>
    new TensorRef(storage as StorageRef, num(offset), Array.isArray(size) ? size.map(num) : (size as number[]), Array.isArray(stride) ? stride.map(num) : (stride as number[]));
  r.register('torch._utils', '_rebuild_tensor_v2', rebuild);
  r.register('torch._utils', '_rebuild_tensor', rebuild);
  r.register('torch._utils', '_rebuild_parameter', (data: unknown) => data);
  r.register('torch._utils', '_rebuild_parameter_with_state', (data: unknown) => data);
  r.register('torch._tensor', '_rebuild_from_type_v2', (func: unknown, _type: unknown, args: unknown) =>
    typeof func === 'function' && Array.isArray(args) ? (func as (...a: unknown[]) => unknown)(...args) : null,
  );
  r.register('_codecs', 'encode', (s: string, enc: string) => Buffer.from(s, enc === 'latin1' || enc === 'latin-1' ? 'latin1' : 'utf8'));
  // storage types are only ever named inside persistent ids: a marker carrying the name
  for (const name of Object.keys(STORAGE_TYPES)) r.register('torch', name, Object.assign(() => null, { storageType: name }));
  return r;
}

// ---- reading ---------------------------------------------------------------------------------

/**
 * Reads a PyTorch checkpoint (torch >= 1.6 zip format) and returns its state dict as float32
 * tensors. The state dict may be the pickled object itself (a dict or OrderedDict of tensors) or
 * be wrapped in a dict under 'state_dict', 'model', 'model_state_dict', 'net', ... (the other
 * entries, epochs or optimizer states, are ignored); a 'module.' prefix on every name
 * (nn.DataParallel) is removed.
 */
export function readTorchCheckpoint(file: string): TorchCheckpoint {
  let buf: Buffer;
  try {
    buf = readRegularFile(file); // a FIFO or a device is refused before any read
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  const fail = (why: string): never => {
    throw new Error(`${file}: ${why}`);
  };
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] <= 5 && buf.includes(LEGACY_MAGIC) && buf.indexOf(LEGACY_MAGIC) < 16)
    fail(
      'a checkpoint in the legacy torch.save format (written by torch < 1.6 or with _use_new_zipfile_serialization=False), ' +
        'which is not read; re-save it with torch >= 1.6: torch.save(torch.load(path), new_path)',
    );
  if (buf.length > 512 && buf.subarray(257, 262).toString('latin1') === 'ustar')
    fail('a checkpoint in the tar format of torch < 0.4, which is not read; re-save it with torch >= 1.6: torch.save(torch.load(path), new_path)');
  if (!(buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && (buf[2] === 0x03 || buf[2] === 0x05)))
    fail('not a PyTorch checkpoint: expected the zip archive torch.save writes (torch >= 1.6), but the file does not start like a zip file');

  let files: Record<string, Uint8Array>;
  try {
    // the archive's declared sizes bound what is inflated: torch.save stores its entries uncompressed,
    // so an archive that claims far more than its own size is damaged (or a zip bomb)
    const limit = 4 * buf.length + (1 << 20);
    let declared = 0;
    let entries = 0;
    const names = new Set<string>();
    let twice: string | undefined;
    files = unzipSync(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), {
      filter: (f) => {
        // a central-directory entry takes at least 46 bytes: a damaged entry count (zip64's is 8 bytes)
        // would otherwise walk garbage for billions of iterations
        if (++entries > buf.length / 46) throw new Error(`its directory claims more entries than a file of ${buf.length} bytes can hold`);
        declared += f.originalSize;
        if (!(declared <= limit)) throw new Error(`its entries claim ${declared} bytes uncompressed, more than 4x the file's ${buf.length}`);
        // two entries of one name: torch.load reads the first, fflate (and many zip tools) keep the last.
        // Refused once the whole directory has been read (a damaged directory is reported as such)
        if (names.has(f.name)) {
          twice ??= f.name;
          return false;
        }
        names.add(f.name);
        return true;
      },
    });
    if (twice !== undefined) throw new DuplicateEntry(twice);
  } catch (e) {
    if (e instanceof DuplicateEntry)
      return fail(`the zip archive holds two entries named '${e.entry}' (torch.load would read the first, other readers the last): an ambiguous archive, refused; re-save it with torch.save`);
    return fail(`damaged or truncated zip archive (${(e as Error).message}); a PyTorch checkpoint is a complete zip file`);
  }
  const pkls = Object.keys(files).filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (pkls.length !== 1)
    fail(`not a PyTorch checkpoint: the zip archive holds ${pkls.length ? pkls.join(', ') : 'no data.pkl'} (torch.save writes exactly one <name>/data.pkl)`);
  const prefix = pkls[0].slice(0, pkls[0].length - 'data.pkl'.length);
  const text = (n: string): string | undefined => (files[prefix + n] ? Buffer.from(files[prefix + n]).toString('utf8').trim() : undefined);
  const order = text('byteorder') ?? 'little';
  if (order !== 'little' && order !== 'big') fail(`${prefix}byteorder says '${order}' (expected little or big)`);
  const archiveVersion = text('version') ?? '';

  let top: unknown;
  try {
    const storages = new Map<string, StorageRef>();
    const parser = new Parser({
      nameResolver: registry(),
      unpicklingTypeOfDictionary: 'Map',
      persistentResolver: {
        resolve(pid: unknown): StorageRef {
          if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 4) throw new Error(`unknown persistent id ${JSON.stringify(pid)}`);
          const [, type, key, location] = pid as [string, unknown, unknown, unknown];
          const known = (type as { storageType?: string } | null)?.storageType;
          if (!known) {
            const p = (type as { prototype?: { __module__?: string; __name__?: string } } | null)?.prototype;
            throw new Error(`storage ${String(key)} has the unsupported type ${p?.__name__ ? `${p.__module__}.${p.__name__}` : String(type)}`);
          }
          const k = String(key);
          let s = storages.get(k);
          if (!s) storages.set(k, (s = new StorageRef(known, k, String(location))));
          return s;
        },
      },
    });
    top = parser.parse(files[pkls[0]]);
  } catch (e) {
    return fail(`cannot read the pickle ${pkls[0]}: ${(e as Error).message}`);
  }

  const { dict, wrapper } = findStateDict(top, file);
  const entries = [...dict.entries()] as [string, TensorRef][];
  let strippedPrefix = '';
  if (entries.length && entries.every(([k]) => k.startsWith('module.'))) strippedPrefix = 'module.';
  const tensors = new Map<string, TorchTensor>();
  for (const [name, t] of entries) {
    const bad = (why: string): never => fail(`tensor '${name}': ${why}`);
    // the pickle may have changed the rebuilt tensor afterwards (a BUILD of its state): every argument is checked again
    checkRebuildArguments(t, bad);
    const bytes = files[`${prefix}data/${t.storage.key}`];
    if (!bytes) bad(`its storage ${prefix}data/${t.storage.key} is missing from the archive`);
    let x: TorchTensor;
    try {
      x = materialise(t, bytes, order === 'little', bad, 4 * buf.length + (1 << 20));
    } catch (e) {
      if ((e as Error).message.startsWith(`${file}: `)) throw e;
      return bad(`cannot be read: ${(e as Error).message}`);
    }
    // weights must be finite: a NaN, or a float64 beyond float32's range (Inf once converted), poisons every output
    const at = firstNonFinite(x.data);
    if (at >= 0)
      bad(
        `holds a non-finite value (${x.data[at]} at flat index ${at}` +
          (x.dtype === 'float64' && !Number.isNaN(x.data[at]) ? ', a float64 beyond the float32 range' : '') +
          `); a checkpoint's weights must be finite numbers`,
      );
    tensors.set(name.slice(strippedPrefix.length), x);
  }
  return { file, tensors, wrapper, strippedPrefix, archiveVersion, byteorder: order as 'little' | 'big' };
}

function isStateDict(x: unknown): x is Map<string, TensorRef> {
  return x instanceof Map && x.size > 0 && [...x.entries()].every(([k, v]) => typeof k === 'string' && v instanceof TensorRef);
}

function describe(x: unknown): string {
  if (x instanceof TensorRef) return 'a tensor';
  if (x instanceof Map) return `a dict with keys ${[...x.keys()].slice(0, 8).map((k) => `'${String(k)}'`).join(', ')}${x.size > 8 ? ', ...' : ''}`;
  if (Array.isArray(x)) return `a list of ${x.length}`;
  const cls = (x as { __module__?: string; __name__?: string } | null)?.__name__;
  if (cls) return `a pickled ${(x as { __module__?: string }).__module__}.${cls} object (torch.save(model) rather than torch.save(model.state_dict())?)`;
  return `a ${x === null ? 'None' : typeof x}`;
}

function findStateDict(top: unknown, file: string): { dict: Map<string, TensorRef>; wrapper: string } {
  if (isStateDict(top)) return { dict: top, wrapper: '' };
  if (top instanceof Map) {
    for (const k of WRAPPER_KEYS) if (isStateDict(top.get(k))) return { dict: top.get(k), wrapper: k };
    const dicts = [...top.entries()].filter(([, v]) => isStateDict(v));
    if (dicts.length === 1) return { dict: dicts[0][1], wrapper: String(dicts[0][0]) };
    const mixed = [...top.entries()].filter(([, v]) => !(v instanceof TensorRef));
    if (mixed.length && mixed.length < top.size)
      throw new Error(`${file}: the state dict holds entries that are not tensors: ${mixed.slice(0, 8).map(([k]) => `'${String(k)}'`).join(', ')}`);
  }
  throw new Error(
    `${file}: no state dict found: the checkpoint holds ${describe(top)}; expected torch.save(model.state_dict(), path) ` +
      `or a dict wrapping one under ${WRAPPER_KEYS.map((k) => `'${k}'`).join(', ')}`,
  );
}

class DuplicateEntry extends Error {
  constructor(readonly entry: string) {
    super(`two entries named '${entry}'`);
  }
}

/** The flat index of the first NaN or Inf, or -1. */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) return i;
  }
  return -1;
}

const show = (x: unknown): string => {
  if (x === null || x === undefined) return 'None';
  if (typeof x === 'string') return `'${x.slice(0, 40)}'`;
  if (Array.isArray(x)) return `[${x.slice(0, 8).map(show).join(', ')}${x.length > 8 ? ', ...' : ''}]`;
  if (typeof x === 'number' || typeof x === 'bigint' || typeof x === 'boolean') return String(x);
  return `a ${(x as { constructor?: { name?: string } }).constructor?.name ?? typeof x}`;
};

/**
 * The arguments of _rebuild_tensor_v2(storage, storage_offset, size, stride) as the pickle left
 * them: a storage reference of a known type and key, a non-negative integer offset, and size and
 * stride lists of non-negative integers of one length. `bad` names the file and the tensor.
 */
function checkRebuildArguments(t: TensorRef, bad: (why: string) => never): void {
  if (!(t instanceof TensorRef)) bad(`is ${show(t)}, not a tensor`);
  const st = t.storage as unknown;
  if (!(st instanceof StorageRef)) return bad(`its storage is ${show(st)}, not a storage reference`);
  if (typeof st.type !== 'string' || !Object.prototype.hasOwnProperty.call(STORAGE_TYPES, st.type))
    bad(`its storage has the dtype ${show(st.type)} (known: ${Object.keys(STORAGE_TYPES).join(', ')})`);
  if (typeof st.key !== 'string' || st.key.length === 0) bad(`its storage key is ${show(st.key)}`);
  const isIndex = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!isIndex(t.offset)) bad(`its storage offset is ${show(t.offset)}, not a non-negative integer`);
  if (!Array.isArray(t.size) || !t.size.every(isIndex)) bad(`its size is ${show(t.size)}, not a list of non-negative integers`);
  if (!Array.isArray(t.stride) || !t.stride.every(isIndex)) bad(`its stride is ${show(t.stride)}, not a list of non-negative integers`);
  if (t.size.length !== t.stride.length) bad(`its size ${show(t.size)} and stride ${show(t.stride)} differ in length`);
}

/** A view of a storage as a C-order float32 array. */
function materialise(t: TensorRef, bytes: Uint8Array, little: boolean, fail: (why: string) => never, maxBytes = Infinity): TorchTensor {
  const { dtype, bytes: esize } = STORAGE_TYPES[t.storage.type];
  const shape = t.size;
  if (shape.some((s) => !Number.isInteger(s) || s < 0)) fail(`bad size [${shape.join(', ')}]`);
  if (t.stride.some((s) => !Number.isInteger(s) || s < 0) || !Number.isInteger(t.offset) || t.offset < 0)
    fail(`bad stride [${t.stride.join(', ')}] or storage offset ${t.offset}`);
  const count = shape.reduce((a, b) => a * b, 1);
  // a view may repeat elements (stride 0), but not into more memory than a few times the file's size
  if (!(count * 4 <= maxBytes)) fail(`size [${shape.join(', ')}] would take ${count * 4} bytes as float32, more than 4x the file's size (a damaged archive?)`);
  const elements = Math.floor(bytes.byteLength / esize);
  if (bytes.byteLength % esize) fail(`its storage has ${bytes.byteLength} bytes, not a whole number of ${dtype} elements`);
  const last = count === 0 ? -1 : t.offset + shape.reduce((a, s, i) => a + (s - 1) * t.stride[i], 0);
  if (last >= elements)
    fail(`size [${shape.join(', ')}], stride [${t.stride.join(', ')}] and offset ${t.offset} reach element ${last} of a storage of ${elements} (a damaged archive?)`);
  const data = new Float32Array(count);
  if (count === 0) return { shape, data, dtype };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read = reader(dtype, dv, little);
  // C-order strides: a contiguous tensor is one run of elements
  let contiguous = true;
  for (let i = shape.length - 1, s = 1; i >= 0; i--) {
    if (shape[i] !== 1 && t.stride[i] !== s) contiguous = false;
    s *= shape[i];
  }
  if (contiguous) {
    if (dtype === 'float32' && little) data.set(new Float32Array(bytes.slice(t.offset * 4, (t.offset + count) * 4).buffer));
    else for (let i = 0; i < count; i++) data[i] = read(t.offset + i);
    return { shape, data, dtype };
  }
  // general strides: walk the index in C order
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let src = t.offset;
  for (let i = 0; i < count; i++) {
    data[i] = read(src);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      src += t.stride[d];
      if (idx[d] < shape[d]) break;
      src -= idx[d] * t.stride[d];
      idx[d] = 0;
    }
  }
  return { shape, data, dtype };
}

function reader(dtype: TorchDtype, dv: DataView, little: boolean): (i: number) => number {
  switch (dtype) {
    case 'float32':
      return (i) => dv.getFloat32(4 * i, little);
    case 'float64':
      return (i) => dv.getFloat64(8 * i, little); // Float32Array assignment rounds to nearest even, as torch's .float()
    case 'float16':
      return (i) => halfToFloat(dv.getUint16(2 * i, little));
    case 'bfloat16': {
      const tmp = new DataView(new ArrayBuffer(4));
      return (i) => {
        tmp.setUint32(0, dv.getUint16(2 * i, little) << 16);
        return tmp.getFloat32(0);
      };
    }
    case 'int64':
      return (i) => Number(dv.getBigInt64(8 * i, little));
    case 'int32':
      return (i) => dv.getInt32(4 * i, little);
    case 'int16':
      return (i) => dv.getInt16(2 * i, little);
    case 'int8':
      return (i) => dv.getInt8(i);
    default:
      return (i) => dv.getUint8(i);
  }
}
