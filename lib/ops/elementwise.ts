/**
 * elementwise.ts: broadcasting arithmetic (NumPy rules), scalar arithmetic, activations, exp/log,
 * and dropout. Native kernels: native/cpu/elementwise.cc.
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { Shape, Tensor, needsGrad, shapeStr } from '../tensor/tensor';

const BINARY = { add: 0, sub: 1, mul: 2, div: 3 } as const;
const UNARY = { relu: 0, gelu: 1, sigmoid: 2, exp: 3, log: 4, tanh: 5, neg: 6, sqrt: 7, abs: 8 } as const;

export function sameDevice(op: string, ...ts: Tensor[]): void {
  for (const t of ts)
    if (t.device !== ts[0].device) throw new Error(`${op}: tensors on different devices (${ts.map((x) => x.device).join(', ')})`);
}

/** The broadcast shape of a and b, and each operand's strides in output coordinates. */
export function broadcast(op: string, a: Shape, b: Shape): { shape: number[]; sa: number[]; sb: number[] } {
  const nd = Math.max(a.length, b.length);
  const shape: number[] = [];
  const sa: number[] = [];
  const sb: number[] = [];
  let stA = 1;
  let stB = 1;
  const dimsA: number[] = [];
  const dimsB: number[] = [];
  for (let i = 0; i < nd; i++) {
    dimsA.push(a[a.length - nd + i] ?? 1);
    dimsB.push(b[b.length - nd + i] ?? 1);
  }
  for (let i = nd - 1; i >= 0; i--) {
    const da = dimsA[i];
    const db = dimsB[i];
    if (da !== db && da !== 1 && db !== 1)
      throw new Error(`${op}: shapes ${shapeStr(a)} and ${shapeStr(b)} cannot be broadcast together`);
    shape[i] = da === 1 ? db : da;
    sa[i] = da === 1 ? 0 : stA;
    sb[i] = db === 1 ? 0 : stB;
    stA *= da;
    stB *= db;
  }
  return { shape, sa, sb };
}

/** Sums g (of a broadcast shape) down to `shape`. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const nd = g.shape.length;
  const strides: number[] = new Array(nd).fill(0);
  let st = 1;
  for (let i = nd - 1; i >= 0; i--) {
    const d = shape[shape.length - nd + i] ?? 1;
    strides[i] = d === 1 ? 0 : st;
    st *= d;
  }
  const out = Tensor.zeros(shape, g.device);
  backend(g.device).sum_to(out.buffer, g.buffer, [...g.shape], strides);
  return out;
}

function binary(op: keyof typeof BINARY, a: Tensor, b: Tensor): Tensor {
  sameDevice(op, a, b);
  const { shape, sa, sb } = broadcast(op, a.shape, b.shape);
  const out = Tensor.empty(shape, a.device); // every kernel here writes its output whole
  backend(a.device).binary_forward(BINARY[op], out.buffer, a.buffer, b.buffer, shape, sa, sb);
  return out;
}

export function add(a: Tensor, b: Tensor): Tensor {
  const out = binary('add', a, b);
  return record('add', out, [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binary('sub', a, b);
  return record('sub', out, [a, b], (g) => [sumTo(g, a.shape), sumTo(neg(g), b.shape)]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binary('mul', a, b);
  return record('mul', out, [a, b], (g) => [sumTo(binary('mul', g, b), a.shape), sumTo(binary('mul', g, a), b.shape)]);
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = binary('div', a, b);
  return record('div', out, [a, b], (g) => {
    const ga = sumTo(binary('div', g, b), a.shape);
    // d(a/b)/db = -a / b^2 = -out / b
    const gb = sumTo(neg(binary('mul', g, binary('div', out, b))), b.shape);
    return [ga, gb];
  });
}

function affineRaw(x: Tensor, alpha: number, beta: number): Tensor {
  const out = Tensor.empty(x.shape, x.device);
  backend(x.device).affine(out.buffer, x.buffer, x.size, alpha, beta);
  return out;
}

/** alpha * x + beta with scalar alpha, beta. */
export function affine(x: Tensor, alpha: number, beta = 0): Tensor {
  if (!Number.isFinite(alpha) || !Number.isFinite(beta)) throw new Error(`affine: alpha and beta must be finite numbers`);
  const out = affineRaw(x, alpha, beta);
  return record('affine', out, [x], (g) => [affineRaw(g, alpha, 0)]);
}

export const mulScalar = (x: Tensor, s: number): Tensor => affine(x, s, 0);
export const addScalar = (x: Tensor, s: number): Tensor => affine(x, 1, s);

function unary(op: keyof typeof UNARY, x: Tensor): Tensor {
  const B = backend(x.device);
  const out = Tensor.empty(x.shape, x.device);
  B.unary_forward(UNARY[op], out.buffer, x.buffer, x.size);
  return record(op, out, [x], (g) => {
    const dx = Tensor.empty(x.shape, x.device);
    B.unary_backward(UNARY[op], dx.buffer, g.buffer, x.buffer, out.buffer, x.size);
    return [dx];
  });
}

export const relu = (x: Tensor): Tensor => unary('relu', x);
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const neg = (x: Tensor): Tensor => unary('neg', x);

/** p in [0, 1) as the float32 the kernels use (a p that rounds to 1 would keep nothing and scale by 1 / 0). */
export function checkDropoutP(op: string, p: number): void {
  if (!(p >= 0 && p < 1)) throw new Error(`${op}: p must be in [0, 1), received ${p}`);
  if (Math.fround(p) >= 1) throw new Error(`${op}: p = ${p} rounds to 1 in float32 (p must be below 1 - 2^-25)`);
}

/** Inverted dropout with a seeded, regenerable mask; identity when not training or p = 0. */
export function dropout(x: Tensor, p: number, training: boolean, seed: number): Tensor {
  checkDropoutP('dropout', p);
  if (!training || p === 0) return x;
  const B = backend(x.device);
  const out = Tensor.empty(x.shape, x.device);
  B.dropout(out.buffer, x.buffer, x.size, p, seed);
  return record('dropout', out, [x], (g) => {
    const dx = Tensor.empty(x.shape, x.device);
    B.dropout(dx.buffer, g.buffer, g.size, p, seed);
    return [dx];
  });
}

/**
 * residual + dropout(x, p, training, seed) in one native call (a residual connection), each value
 * the bits of add(residual, dropout(x, ...)); x and residual have one shape.
 */
export function dropoutAdd(x: Tensor, residual: Tensor, p: number, training: boolean, seed: number): Tensor {
  checkDropoutP('dropoutAdd', p);
  if (!training || p === 0) return add(residual, x);
  sameDevice('dropoutAdd', x, residual);
  if (x.ndim !== residual.ndim || x.shape.some((d, i) => d !== residual.shape[i]))
    throw new Error(`dropoutAdd: x ${shapeStr(x.shape)} and residual ${shapeStr(residual.shape)} must have the same shape`);
  const B = backend(x.device);
  const out = Tensor.empty(x.shape, x.device);
  B.dropout_add(out.buffer, x.buffer, residual.buffer, x.size, p, seed);
  // inputs in add(residual, dropout(x))'s order, so that backward walks the graph in the same order
  // (a sum of three or more gradients is summed in the order they arrive)
  return record('dropoutAdd', out, [residual, x], (g) => {
    const dx = Tensor.empty(x.shape, x.device);
    B.dropout(dx.buffer, g.buffer, g.size, p, seed);
    return [g, dx];
  });
}

/**
 * a y + b (1 - y) for tensors of one shape, y a constant (labels), in one native call each way:
 * the bits of add(mul(a, y), mul(b, affine(y, -1, 1))).
 */
export function blend(a: Tensor, b: Tensor, y: Tensor): Tensor {
  sameDevice('blend', a, b, y);
  for (const t of [b, y])
    if (t.ndim !== a.ndim || t.shape.some((d, i) => d !== a.shape[i]))
      throw new Error(`blend: a ${shapeStr(a.shape)}, b ${shapeStr(b.shape)} and y ${shapeStr(y.shape)} must have one shape`);
  if (needsGrad(y)) return add(mul(a, y), mul(b, affine(y, -1, 1)));
  const B = backend(a.device);
  const out = Tensor.empty(a.shape, a.device);
  B.blend_forward(out.buffer, a.buffer, b.buffer, y.buffer, a.size);
  return record('blend', out, [a, b], (g) => {
    const da = needsGrad(a) ? Tensor.empty(a.shape, a.device) : null;
    const db = needsGrad(b) ? Tensor.empty(b.shape, b.device) : null;
    B.blend_backward(da?.buffer ?? null, db?.buffer ?? null, g.buffer, y.buffer, a.size);
    return [da, db];
  });
}

/**
 * sum_k weights[k] * xs[k] over tensors of one shape, in one native call: the bits of
 * mulScalar(x_k, w_k) for each term, added pairwise (the first half, then the second, recursively:
 * ((t0 + t1) + (t2 + t3)) for four terms). At most 8 terms.
 */
export function weightedSum(xs: Tensor[], weights: number[]): Tensor {
  if (xs.length < 1 || xs.length > 8 || weights.length !== xs.length)
    throw new Error(`weightedSum: expected 1 to 8 tensors and one weight each, received ${xs.length} tensors and ${weights.length} weights`);
  if (!weights.every(Number.isFinite)) throw new Error('weightedSum: weights must be finite numbers');
  sameDevice('weightedSum', ...xs);
  const first = xs[0];
  for (const x of xs)
    if (x.ndim !== first.ndim || x.shape.some((d, i) => d !== first.shape[i]))
      throw new Error(`weightedSum: shapes ${xs.map((t) => shapeStr(t.shape)).join(', ')} differ`);
  const B = backend(first.device);
  const w = Float32Array.from(weights);
  const out = Tensor.empty(first.shape, first.device);
  B.weighted_sum(out.buffer, out.size, w, ...xs.map((x) => x.buffer));
  return record('weightedSum', out, xs, (g) => {
    const ds = xs.map((x) => (needsGrad(x) ? Tensor.empty(x.shape, x.device) : null));
    B.weighted_sum_backward(g.buffer, g.size, w, ...ds.map((d) => d?.buffer ?? null));
    return ds;
  });
}
