/**
 * loss.ts: elementwise losses (BCE, smooth L1, MSE) with PyTorch's conventions, and the
 * reductions applied to them. Weights (the focal weighting of SPEC §2) multiply the elementwise
 * loss before reduction. Native: native/cpu/loss.cc.
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { Tensor, shapeStr } from '../tensor/tensor';
import { mul, sameDevice } from './elementwise';
import { meanAll, sumAll } from './reduce';

export type Reduction = 'none' | 'mean' | 'sum';
const KIND = { bce: 0, smoothL1: 1, mse: 2 } as const;

function elementwiseLoss(kind: keyof typeof KIND, a: Tensor, b: Tensor, beta: number): Tensor {
  sameDevice(kind, a, b);
  if (a.size !== b.size || a.ndim !== b.ndim || a.shape.some((d, i) => d !== b.shape[i]))
    throw new Error(`${kind}: input ${shapeStr(a.shape)} and target ${shapeStr(b.shape)} must have the same shape`);
  const B = backend(a.device);
  const out = Tensor.zeros(a.shape, a.device);
  B.loss_forward(KIND[kind], out.buffer, a.buffer, b.buffer, a.size, beta);
  return record(kind, out, [a, b], (g) => {
    const da = Tensor.zeros(a.shape, a.device);
    B.loss_backward(KIND[kind], da.buffer, g.buffer, a.buffer, b.buffer, a.size, beta);
    if (kind === 'bce') return [da, null]; // targets are labels
    const db = Tensor.zeros(b.shape, b.device);
    B.affine(db.buffer, da.buffer, da.size, -1, 0);
    return [da, db];
  });
}

function reduce(l: Tensor, reduction: Reduction): Tensor {
  if (reduction === 'none') return l;
  return reduction === 'sum' ? sumAll(l) : meanAll(l);
}

/** Binary cross-entropy on probabilities p (logs clamped at -100, as PyTorch). */
export function bce(p: Tensor, target: Tensor, options: { weight?: Tensor; reduction?: Reduction } = {}): Tensor {
  let l = elementwiseLoss('bce', p, target, 0);
  if (options.weight) l = mul(l, options.weight);
  return reduce(l, options.reduction ?? 'mean');
}

/**
 * The focal-weighted BCE of SPEC §2, scale * sum (1 - p_t)^2 bce(p, y) over all values of p, with
 * 1 - p_t = p (1 - 2y) + y: one native call forward and one backward, the bits of
 * mulScalar(bce(p, y, {weight: mul(o, o), reduction: 'sum'}), scale), o = add(mul(p, 1 - 2y), y).
 * target: y, p's shape (labels: no gradient).
 */
export function focalBce(p: Tensor, target: Float32Array, scale: number): Tensor {
  if (target.length !== p.size) throw new Error(`focalBce: target has ${target.length} values, p ${shapeStr(p.shape)} has ${p.size}`);
  if (!Number.isFinite(scale)) throw new Error(`focalBce: scale must be a finite number, received ${scale}`);
  const y = Tensor.from(target, p.shape, p.device);
  const c = Tensor.from(target.map((v) => 1 - 2 * v), p.shape, p.device);
  const B = backend(p.device);
  const out = Tensor.empty([], p.device);
  B.focal_bce_forward(out.buffer, p.buffer, y.buffer, c.buffer, p.size, scale);
  return record('focalBce', out, [p], (g) => {
    const dp = Tensor.empty(p.shape, p.device);
    B.focal_bce_backward(dp.buffer, g.buffer, p.buffer, y.buffer, c.buffer, p.size, scale);
    return [dp];
  });
}

export function smoothL1(a: Tensor, b: Tensor, options: { beta?: number; reduction?: Reduction } = {}): Tensor {
  const beta = options.beta ?? 1;
  if (!(beta > 0)) throw new Error(`smoothL1: beta must be positive, received ${beta}`);
  return reduce(elementwiseLoss('smoothL1', a, b, beta), options.reduction ?? 'mean');
}

export function mse(a: Tensor, b: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  return reduce(elementwiseLoss('mse', a, b, 0), options.reduction ?? 'mean');
}
