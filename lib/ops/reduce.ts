/**
 * reduce.ts: sum / mean / max over an axis, whole-tensor sum and mean, and the mean of the top-k
 * values along time (the video score of SPEC §2 step 5). Native: native/cpu/reduce.cc.
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { Tensor, shapeStr, shapeSize } from '../tensor/tensor';
import { axisBlockGrad } from './shape';

const KIND = { sum: 0, mean: 1, max: 2 } as const;

function normAxis(op: string, x: Tensor, axis: number): number {
  const a = axis < 0 ? axis + x.ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= x.ndim) throw new Error(`${op}: axis ${axis} is out of range for ${shapeStr(x.shape)}`);
  if (x.shape[a] === 0) throw new Error(`${op}: cannot reduce the empty axis ${axis} of ${shapeStr(x.shape)}`);
  return a;
}

/** kind over positions [start, end) of an axis (default all): a slice's reduction without the slice's copy. */
function reduce(kind: keyof typeof KIND, x: Tensor, axis: number, keepDim: boolean, start = 0, end?: number): Tensor {
  const a = normAxis(kind, x, axis);
  const axisLen = x.shape[a];
  const stop = end ?? axisLen;
  if (!Number.isInteger(start) || !Number.isInteger(stop) || start < 0 || stop > axisLen || start >= stop)
    throw new Error(`${kind}: positions [${start}, ${stop}) are not a non-empty range of axis ${axis} of ${shapeStr(x.shape)}`);
  const outer = shapeSize(x.shape.slice(0, a));
  const len = stop - start;
  const inner = shapeSize(x.shape.slice(a + 1));
  const outShape = keepDim ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  const B = backend(x.device);
  const out = Tensor.empty(outShape, x.device); // the kernels write out and argmax whole
  const argmax = kind === 'max' ? Tensor.empty(outShape, x.device) : null;
  B.reduce_forward(KIND[kind], out.buffer, argmax?.buffer ?? null, x.buffer, outer, len, inner, axisLen, start);
  return record(kind, out, [x], (g) => {
    const blockShape = x.shape.map((d, i) => (i === a ? len : d));
    const dx = Tensor.empty(blockShape, x.device); // reduce_backward writes it whole
    B.reduce_backward(KIND[kind], dx.buffer, g.buffer, argmax?.buffer ?? null, outer, len, inner);
    if (len === axisLen) return [dx];
    // the positions outside the range get nothing: added where the range was (autograd's BlockGrad)
    return [axisBlockGrad(dx, a, start)];
  });
}

export const sum = (x: Tensor, axis: number, keepDim = false): Tensor => reduce('sum', x, axis, keepDim);
export const mean = (x: Tensor, axis: number, keepDim = false): Tensor => reduce('mean', x, axis, keepDim);
/** Max over an axis; the gradient goes to the first maximal element. */
export const max = (x: Tensor, axis: number, keepDim = false): Tensor => reduce('max', x, axis, keepDim);
/**
 * Max over positions [start, end) of an axis: max(slice(x, axis, start, end), axis), the same
 * values and gradient, without copying the slice out.
 */
export const maxOver = (x: Tensor, axis: number, start: number, end: number): Tensor => reduce('max', x, axis, false, start, end);

/** Sum of all values, as a scalar tensor. */
export function sumAll(x: Tensor): Tensor {
  if (x.size === 0) return Tensor.scalar(0, x.device);
  return reduce('sum', x.reshape([x.size]), 0, false);
}

/** Mean of all values, as a scalar tensor. */
export function meanAll(x: Tensor): Tensor {
  if (x.size === 0) throw new Error('meanAll: mean of an empty tensor');
  return reduce('mean', x.reshape([x.size]), 0, false);
}

/** x [T, C] -> [C]: per column, the mean of its k largest values (ties keep the earlier row). */
export function topkMean(x: Tensor, k: number): Tensor {
  if (x.ndim !== 2) throw new Error(`topkMean: expected x [T, C], received ${shapeStr(x.shape)}`);
  const [T, C] = x.shape;
  if (!Number.isInteger(k) || k < 1 || k > T) throw new Error(`topkMean: k must be an integer in [1, T=${T}], received ${k}`);
  const B = backend(x.device);
  const out = Tensor.zeros([C], x.device);
  const index = Tensor.zeros([k, C], x.device);
  B.topk_mean_forward(out.buffer, index.buffer, x.buffer, T, C, k);
  return record('topkMean', out, [x], (g) => {
    const dx = Tensor.zeros(x.shape, x.device);
    B.topk_mean_backward(dx.buffer, g.buffer, index.buffer, T, C, k);
    return [dx];
  });
}
