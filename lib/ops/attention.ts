/**
 * attention.ts: multi-head scaled-dot-product attention over all tokens (no mask), with dropout
 * on the attention weights. q [Lq, D], k, v [L, D] are already projected; heads split D into H
 * blocks. Lq < L: the queries are the first Lq tokens' (their rows of the Lq = L result, bit for
 * bit: the dropout mask is numbered as for all L queries), for a block whose later rows are unused.
 * Native: native/cpu/attention.cc (heads in parallel; the probabilities saved with the dropout mask in
 * their sign bits), native/cuda/attention.cu (probabilities saved plain, mask regenerated).
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { Tensor, needsGrad, shapeStr } from '../tensor/tensor';
import { checkDropoutP, sameDevice } from './elementwise';

export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, dropoutP = 0, seed = 0): Tensor {
  sameDevice('attention', q, k, v);
  if (q.ndim !== 2 || k.ndim !== 2 || v.ndim !== 2 || v.shape[0] !== k.shape[0] || ![k, v].every((t) => t.shape[1] === q.shape[1]) || q.shape[0] > k.shape[0])
    throw new Error(`attention: q must be [Lq, D] and k, v [L, D] with Lq <= L; received ${[q, k, v].map((t) => shapeStr(t.shape)).join(', ')}`);
  const [Lq, D] = q.shape;
  const L = k.shape[0];
  if (!Number.isInteger(heads) || heads < 1 || D % heads !== 0) throw new Error(`attention: ${heads} heads do not divide D = ${D}`);
  checkDropoutP('attention', dropoutP);
  const B = backend(q.device);
  const out = Tensor.empty([Lq, D], q.device); // the kernels write their outputs whole
  // The attention weights are kept for the backward only; without a gradient the native op
  // works in per-head scratch instead (inference does not allocate [H, Lq, L]).
  if (![q, k, v].some(needsGrad)) {
    B.attention_forward(out.buffer, null, q.buffer, k.buffer, v.buffer, Lq, L, D, heads, dropoutP, seed);
    return record('attention', out, [q, k, v], () => [null, null, null]); // (checks finiteness only)
  }
  const probs = Tensor.empty([heads, Lq, L], q.device);
  B.attention_forward(out.buffer, probs.buffer, q.buffer, k.buffer, v.buffer, Lq, L, D, heads, dropoutP, seed);
  return record('attention', out, [q, k, v], (g) => {
    const dq = Tensor.empty([Lq, D], q.device);
    const dk = Tensor.empty([L, D], q.device);
    const dv = Tensor.empty([L, D], q.device);
    B.attention_backward(dq.buffer, dk.buffer, dv.buffer, g.buffer, probs.buffer, q.buffer, k.buffer, v.buffer, Lq, L, D, heads, dropoutP, seed);
    return [dq, dk, dv];
  });
}
