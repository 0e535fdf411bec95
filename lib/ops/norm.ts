/**
 * norm.ts: softmax / log-softmax over the last axis, LayerNorm, and row L2 normalisation.
 * Native: native/ops/norm.h (kernels native/cpu/norm.cc, native/cuda/norm.cu).
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { ADDED, Tensor, shapeStr } from '../tensor/tensor';
import { sameDevice } from './elementwise';

function rowsCols(op: string, x: Tensor): [number, number] {
  if (x.ndim < 1 || x.shape[x.ndim - 1] === 0) throw new Error(`${op}: needs a non-empty last axis, received ${shapeStr(x.shape)}`);
  const cols = x.shape[x.ndim - 1];
  return [x.size / cols, cols];
}

function softmaxImpl(x: Tensor, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  const [rows, cols] = rowsCols(op, x);
  const B = backend(x.device);
  const out = Tensor.empty(x.shape, x.device); // the row kernels write every value
  B.softmax_forward(out.buffer, x.buffer, rows, cols, log);
  return record(op, out, [x], (g) => {
    const dx = Tensor.empty(x.shape, x.device);
    B.softmax_backward(dx.buffer, g.buffer, out.buffer, rows, cols, log);
    return [dx];
  });
}

export const softmax = (x: Tensor): Tensor => softmaxImpl(x, false);
export const logSoftmax = (x: Tensor): Tensor => softmaxImpl(x, true);

/** LayerNorm over the last axis with affine weight and bias [D]. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  sameDevice('layerNorm', x, weight, bias);
  const [rows, cols] = rowsCols('layerNorm', x);
  if (weight.size !== cols || bias.size !== cols)
    throw new Error(`layerNorm: weight ${shapeStr(weight.shape)} and bias ${shapeStr(bias.shape)} must have ${cols} values for x ${shapeStr(x.shape)}`);
  const B = backend(x.device);
  const out = Tensor.empty(x.shape, x.device);
  const mean = Tensor.empty([rows], x.device);
  const rstd = Tensor.empty([rows], x.device);
  B.layernorm_forward(out.buffer, mean.buffer, rstd.buffer, x.buffer, weight.buffer, bias.buffer, rows, cols, eps);
  return record('layerNorm', out, [x, weight, bias], (g, into) => {
    const dx = Tensor.empty(x.shape, x.device);
    // weight's and bias's gradients added straight into autograd's sums (their .grad) when it
    // offers both; the kernel writes them whole otherwise
    const acc = !!(into?.[1] && into?.[2]);
    const dw = acc ? into![1]! : Tensor.empty(weight.shape, x.device);
    const db = acc ? into![2]! : Tensor.empty(bias.shape, x.device);
    B.layernorm_backward(dx.buffer, dw.buffer, db.buffer, g.buffer, x.buffer, mean.buffer, rstd.buffer, weight.buffer, rows, cols, acc);
    return acc ? [dx, ADDED, ADDED] : [dx, dw, db];
  });
}

/** Rows divided by max(||row||, eps), as F.normalize(x, dim=-1). */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  const [rows, cols] = rowsCols('l2Normalize', x);
  const B = backend(x.device);
  const out = Tensor.zeros(x.shape, x.device);
  const norm = Tensor.zeros([rows], x.device);
  B.l2norm_forward(out.buffer, norm.buffer, x.buffer, rows, cols, eps);
  return record('l2Normalize', out, [x], (g) => {
    const dx = Tensor.zeros(x.shape, x.device);
    B.l2norm_backward(dx.buffer, g.buffer, x.buffer, norm.buffer, rows, cols, eps);
    return [dx];
  });
}
