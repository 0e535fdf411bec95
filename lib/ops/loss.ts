/**
 * loss.ts: elementwise losses (BCE, smooth L1, MSE) with PyTorch's conventions, and the
 * reductions applied to them. Weights (the focal weighting of SPEC §2) multiply the elementwise
 * loss before reduction. Native: native/cpu/loss.cc.
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { Tensor, needsGrad, shapeStr } from '../tensor/tensor';
import { exp, mul, mulScalar, sameDevice } from './elementwise';
import { matmul } from './matmul';
import { l2Normalize } from './norm';
import { mean, meanAll, sumAll } from './reduce';
import { gatherRows } from './shape';

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

/**
 * The contrastive loss's similarity (SPEC §2 eq. 7): per column c of P [C, D],
 *   out[c] = mean over the given rows r of E [T, D] of exp(scale * normalize(E[r]) . P[c]),
 * normalize(x) = x / max(||x||, eps); one native call forward and one backward with the bits of
 * mean(exp(mulScalar(matmul(l2Normalize(gatherRows(E, rows)), P, {transB: true}), scale)), 0).
 * P takes no gradient (the prototypes are constants; a P that needs one takes the separate ops).
 */
export function similarityMean(E: Tensor, rows: ArrayLike<number>, P: Tensor, scale: number, eps = 1e-12): Tensor {
  sameDevice('similarityMean', E, P);
  if (E.ndim !== 2 || P.ndim !== 2 || P.shape[1] !== E.shape[1])
    throw new Error(`similarityMean: expected E [T, D] and P [C, D], received ${shapeStr(E.shape)} and ${shapeStr(P.shape)}`);
  if (rows.length === 0) throw new Error('similarityMean: no rows');
  if (!Number.isFinite(scale)) throw new Error(`similarityMean: scale must be a finite number, received ${scale}`);
  if (needsGrad(P)) return mean(exp(mulScalar(matmul(l2Normalize(gatherRows(E, rows), eps), P, { transB: true }), scale)), 0);
  const [T, D] = E.shape;
  const C = P.shape[0];
  const idx = Int32Array.from(rows);
  for (let i = 0; i < idx.length; i++)
    if (!(idx[i] >= 0 && idx[i] < T) || idx[i] !== rows[i])
      throw new Error(`similarityMean: row ${rows[i]} at position ${i} is out of range for E ${shapeStr(E.shape)}`);
  const B = backend(E.device);
  const out = Tensor.empty([C], E.device);
  B.similarity_mean_forward(out.buffer, E.buffer, P.buffer, idx, T, D, C, scale, eps);
  return record('similarityMean', out, [E], (g) => {
    const dE = Tensor.zeros(E.shape, E.device);
    B.similarity_mean_backward(dE.buffer, g.buffer, E.buffer, P.buffer, idx, T, D, C, scale, eps);
    return [dE];
  });
}

/**
 * The class terms of the contrastive loss (SPEC §2 eq. 7): with a_k [C] the similarities of class
 * classes[k]'s action rows and b [C] the background rows' (similarityMean),
 *   scale * sum_k 0.5 ((log sum(a_k) - log a_k[c_k]) + (log(a_k[c_k] + b[c_k]) - log a_k[c_k]))
 * in one native call each way, the bits of the separate ops (slice, log, sumAll, sub, add,
 * mulScalar per class, then concat, sumAll, mulScalar) and of their gradients as autograd sums them.
 */
export function contrastiveTerms(as: Tensor[], b: Tensor, classes: number[], scale: number): Tensor {
  const K = as.length;
  if (K < 1 || K > 4096 || classes.length !== K) throw new Error(`contrastiveTerms: expected 1 to 4096 tensors and one class each, received ${K} tensors and ${classes.length} classes`);
  sameDevice('contrastiveTerms', b, ...as);
  if (b.ndim !== 1) throw new Error(`contrastiveTerms: b must be [C], received ${shapeStr(b.shape)}`);
  const C = b.size;
  for (const a of as) if (a.ndim !== 1 || a.size !== C) throw new Error(`contrastiveTerms: each a_k must be [${C}] as b, received ${shapeStr(a.shape)}`);
  const cls = Int32Array.from(classes);
  cls.forEach((c, k) => {
    if (!(c >= 0 && c < C) || c !== classes[k]) throw new Error(`contrastiveTerms: class ${classes[k]} at position ${k} is out of range for C = ${C}`);
  });
  if (!Number.isFinite(scale)) throw new Error(`contrastiveTerms: scale must be a finite number, received ${scale}`);
  const B = backend(b.device);
  const out = Tensor.empty([], b.device);
  B.contrastive_terms_forward(out.buffer, b.buffer, cls, C, scale, ...as.map((a) => a.buffer));
  // inputs in the order the per-class graph reached them (the last class's a first, then b, then
  // the other classes' from the last), so backward walks the rest of the graph as it did
  const inputs = [...as.slice(0, K - 1), b, as[K - 1]];
  return record('contrastiveTerms', out, inputs, (g) => {
    const db = Tensor.zeros([C], b.device);
    const das = as.map((a) => Tensor.empty([C], a.device));
    B.contrastive_terms_backward(g.buffer, b.buffer, cls, C, scale, db.buffer, ...as.map((a) => a.buffer), ...das.map((d) => d.buffer));
    return [...das.slice(0, K - 1), db, das[K - 1]];
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
