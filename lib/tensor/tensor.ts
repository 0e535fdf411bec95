/**
 * tensor.ts: Tensor, its native storage, scopes that free a step's intermediates deterministically,
 * and the switches of the autograd engine (no-grad mode, anomaly detection).
 *
 * Invariants:
 * - Every tensor lives in native memory (a NativeBuffer of its device's backend). Views (reshape)
 *   share a refcounted Storage; the buffer is freed when its last view is disposed.
 * - A tensor created inside `tidy(fn)` is disposed when fn returns, unless it is (part of) the
 *   result or was `keep()`-ed. Parameters and optimizer state are kept. This is what keeps
 *   resident memory flat over thousands of steps; the garbage collector is only a fallback.
 * - Shapes are validated here, in TypeScript, with messages naming the op and the shapes; the
 *   native side re-checks buffer sizes so that nothing can read out of bounds.
 */
import { backend, Device, checkDevice } from '../runtime/backend';
import type { NativeAddon, NativeBuffer } from '../runtime/native';
import '../util/dispose';

/**
 * What a backward returns for an input whose gradient it added into the tensor autograd offered
 * (`into[i]`): nothing is left for autograd to add.
 */
export const ADDED = Symbol('gradient added in place');

/** An autograd record: how to turn the output's gradient into the inputs' gradients. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /**
   * Returns one gradient per input (null where none flows): a tensor of the input's shape, or a
   * BlockGrad. May return `grad` itself once (as a tensor or as a BlockGrad's block).
   * `into[i]`, where given, is a tensor of input i's shape that input i's gradient is to be added
   * to (the gradient summed so far, or a leaf's `.grad`): a backward whose kernel can add its result
   * in place (a GEMM's accumulate) does so and returns ADDED for that input, saving the separate
   * addition; the sum must be the bits of `into[i] + gradient` computed whole. Others ignore it.
   */
  backward(grad: Tensor, into?: (Tensor | null)[]): (Tensor | BlockGrad | null | typeof ADDED)[];
}

/**
 * A gradient that is zero outside one block of its input (a slice's): autograd adds the block where
 * it lands instead of building a zero-filled tensor of the input's size and adding that whole. For
 * MultiheadAttention's in_proj_weight [3D, D], whose q, k and v rows are slices, that was a 3D^2
 * fill and a 3D^2 addition per slice and video for D^2 numbers (~2.5 % of a D = 2048 step).
 */
export interface BlockGrad {
  /** the block's values (the gradient owns this tensor) */
  block: Tensor;
  /** writes (accumulate false) or adds the block into its place in `dst`, a tensor of the input's shape */
  addInto(dst: Tensor, accumulate: boolean): void;
}

/**
 * Disposed native buffers kept for the next tensors of the same backend: each NativeBuffer is a
 * native object whose finalizer Node runs only when the event loop turns, so a new wrapper per
 * tensor made a caller that loops without yielding (detect() over thousands of videos) hold every
 * wrapper it ever made until it yielded: 2.3 MB more resident memory per 100 detect() calls.
 * Reused wrappers need no finalizer. Only buffers that a Storage owned are pooled, so a
 * NativeBuffer read from `tensor.buffer` must not be kept past the tensor's disposal: it may hold
 * another tensor's values by then (`tensor.buffer` itself throws once the tensor is disposed).
 */
const POOL_MAX = 4096;
const pools = new Map<NativeAddon, NativeBuffer[]>();

function poolOf(B: NativeAddon): NativeBuffer[] {
  let p = pools.get(B);
  if (!p) pools.set(B, (p = []));
  return p;
}

/**
 * A buffer of `sizeOrData` (a size: zero-filled, or left unfilled with zero = false; or a copy),
 * a pooled wrapper where one is free.
 */
function newBuffer(B: NativeAddon, sizeOrData: number | Float32Array, zero = true): NativeBuffer {
  const b = poolOf(B).pop();
  if (!b) return typeof sizeOrData === 'number' ? new B.NativeBuffer(sizeOrData, zero) : new B.NativeBuffer(sizeOrData);
  try {
    if (typeof sizeOrData === 'number') b.reset(sizeOrData, zero);
    else b.reset(sizeOrData);
  } catch (e) {
    poolOf(B).push(b);
    throw e;
  }
  return b;
}

class Storage {
  refs = 1;
  constructor(
    readonly buffer: NativeBuffer,
    private readonly B: NativeAddon,
  ) {}
  release(): void {
    if (--this.refs !== 0) return;
    this.buffer.dispose();
    const pool = poolOf(this.B);
    // an addon built before reset() existed (an old PSTAL_ADDON build) cannot reuse wrappers
    if (pool.length < POOL_MAX && typeof this.buffer.reset === 'function') pool.push(this.buffer);
  }
}

const scopes: Set<Tensor>[] = [];
let gradEnabled = true;
// PSTAL_DETECT_ANOMALY=1: on from the start (a training run that stopped on NaN/Inf, rerun to name the op)
let anomalyDetection = process.env.PSTAL_DETECT_ANOMALY === '1';

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function validShape(shape: Shape): boolean {
  return Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0);
}

export class Tensor {
  readonly shape: Shape;
  readonly size: number;
  readonly device: Device;
  requiresGrad = false;
  /** Accumulated gradient of a leaf that requires grad (kept across scopes). */
  grad: Tensor | null = null;
  /** How this tensor was computed, when it needs a gradient. */
  node: GradNode | null = null;
  private storage: Storage | null;

  protected constructor(storage: Storage, shape: Shape, device: Device) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.size = shapeSize(shape);
    this.device = device;
    const top = scopes[scopes.length - 1];
    if (top) top.add(this);
  }

  /** A new zero-filled tensor. */
  static zeros(shape: Shape, device: Device = 'cpu'): Tensor {
    if (!validShape(shape)) throw new Error(`Tensor.zeros: invalid shape ${JSON.stringify(shape)}`);
    const B = backend(checkDevice(device));
    return new Tensor(new Storage(newBuffer(B, shapeSize(shape)), B), shape, device);
  }

  /**
   * A new tensor with unspecified contents (no fill pass): only for an op's output that its kernel
   * writes whole before anything reads it.
   */
  static empty(shape: Shape, device: Device = 'cpu'): Tensor {
    if (!validShape(shape)) throw new Error(`Tensor.empty: invalid shape ${JSON.stringify(shape)}`);
    const B = backend(checkDevice(device));
    return new Tensor(new Storage(newBuffer(B, shapeSize(shape), false), B), shape, device);
  }

  /** A tensor holding a copy of `data` (row-major). */
  static from(data: Float32Array | ArrayLike<number>, shape: Shape, device: Device = 'cpu'): Tensor {
    if (!validShape(shape)) throw new Error(`Tensor.from: invalid shape ${JSON.stringify(shape)}`);
    const arr = data instanceof Float32Array ? data : Float32Array.from(data);
    if (arr.length !== shapeSize(shape))
      throw new Error(`Tensor.from: ${arr.length} values do not fill shape ${shapeStr(shape)} (${shapeSize(shape)})`);
    const B = backend(checkDevice(device));
    return new Tensor(new Storage(newBuffer(B, arr), B), shape, device);
  }

  static full(shape: Shape, value: number, device: Device = 'cpu'): Tensor {
    const t = Tensor.zeros(shape, device);
    if (value !== 0) t.buffer.fill(value);
    return t;
  }

  static scalar(value: number, device: Device = 'cpu'): Tensor {
    return Tensor.from([value], [], device);
  }

  /** The native buffer; throws if the tensor was disposed. Do not keep it past the tensor's disposal (it is reused). */
  get buffer(): NativeBuffer {
    if (!this.storage) throw new Error(`tensor ${shapeStr(this.shape)} was disposed (use after free)`);
    return this.storage.buffer;
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Frees this tensor's reference to its storage (idempotent). */
  dispose(): void {
    if (!this.storage) return;
    this.storage.release();
    this.storage = null;
    for (const s of scopes) s.delete(this);
  }

  /** dispose(), for `using t = ...` (TypeScript 5.2+). */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Exempts this tensor from the enclosing scopes' disposal. */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }

  /** A copy of the values (row-major). */
  toArray(): Float32Array {
    return this.buffer.read();
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor ${shapeStr(this.shape)} has ${this.size} values, not 1`);
    return this.buffer.read(0, 1)[0];
  }

  /** Nested JS arrays, for printing and tests. */
  toNested(): unknown {
    const data = this.toArray();
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return data[off];
      const stride = shapeSize(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, off + i * stride));
    };
    return build(0, 0);
  }

  /** A view with another shape over the same values (no copy). */
  reshape(shape: Shape): Tensor {
    let s = [...shape];
    const neg = s.indexOf(-1);
    if (neg >= 0) {
      const rest = shapeSize(s.filter((_, i) => i !== neg));
      s[neg] = rest === 0 ? 0 : this.size / rest;
    }
    if (!validShape(s) || shapeSize(s) !== this.size)
      throw new Error(`reshape: cannot view ${shapeStr(this.shape)} (${this.size} values) as ${shapeStr(shape)}`);
    const storage = this.storage;
    if (!storage) throw new Error(`reshape: tensor ${shapeStr(this.shape)} was disposed`);
    storage.refs++;
    const out = new Tensor(storage, s, this.device);
    if (needsGrad(this)) {
      const from = this.shape;
      out.node = { op: 'reshape', inputs: [this], backward: (g) => [g.reshape(from)] };
    }
    return out;
  }

  /** A copy that is cut from the graph. */
  detach(): Tensor {
    const out = Tensor.empty(this.shape, this.device); // the copy writes it whole
    backend(this.device).copy(this.buffer, 0, out.buffer, 0, this.size);
    return out;
  }

  /** A copy on another device (or the same). */
  to(device: Device): Tensor {
    if (device === this.device) return this.detach();
    return Tensor.from(this.toArray(), this.shape, device);
  }

  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** Whether an op on this tensor must be recorded for backward. */
export function needsGrad(t: Tensor): boolean {
  return gradEnabled && (t.requiresGrad || t.node !== null);
}

/** Runs fn and disposes every tensor it created except those it returns (in arrays/objects too). */
export function tidy<T>(fn: () => T): T {
  const { result, tensors } = owned(fn);
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of tensors) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/**
 * Runs fn and hands back, beside its result, every tensor it created, none of them disposed: for a
 * graph that must outlive the scope it was built in (the caller disposes them). If fn throws, what
 * it created is disposed.
 */
export function owned<T>(fn: () => T): { result: T; tensors: Tensor[] } {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  return { result, tensors: [...scope] };
}

function collectTensors(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collectTensors(x, out, depth + 1);
  else if (v instanceof Map) for (const x of v.values()) collectTensors(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectTensors(x, out, depth + 1);
}

/** Runs fn without recording gradients (inference, memory updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * When on, every op checks its output (and, in backward, each gradient it passes on) for NaN/Inf and
 * throws naming the first op that made one. Also on with PSTAL_DETECT_ANOMALY=1.
 */
export function setDetectAnomaly(on: boolean): void {
  anomalyDetection = on;
}

export function isDetectAnomaly(): boolean {
  return anomalyDetection;
}

export function checkFinite(op: string, out: Tensor, inputs: Tensor[]): void {
  if (!anomalyDetection) return;
  const i = backend(out.device).first_nonfinite(out.buffer) as number;
  if (i >= 0) {
    const v = out.buffer.read(i, 1)[0];
    throw new Error(
      `${op}: produced ${v} at flat index ${i} of its output ${shapeStr(out.shape)} ` +
        `(inputs ${inputs.map((t) => shapeStr(t.shape)).join(', ')}); anomaly detection is on`,
    );
  }
}

/** Makes a leaf tensor that is kept out of every scope (parameters, optimizer state). */
export function persistent(t: Tensor): Tensor {
  return t.keep();
}
