/**
 * shape.ts: ops that move values without arithmetic: row gather, concat and slice along any axis,
 * 2-D transpose. Native: native/ops/shape.h (kernels native/cpu/shape.cc, native/cuda/shape.cu).
 * Outputs the kernels write whole start uninitialised (Tensor.empty); a slice's gradient, which
 * they write only in part, starts at zero.
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { BlockGrad, Tensor, shapeStr, shapeSize } from '../tensor/tensor';
import { sameDevice } from './elementwise';

function normAxis(op: string, ndim: number, axis: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) throw new Error(`${op}: axis ${axis} is out of range for ${ndim} dimensions`);
  return a;
}

/** Rows of x [N, ...] picked by index: out[i] = x[index[i]]. */
export function gatherRows(x: Tensor, index: ArrayLike<number>): Tensor {
  if (x.ndim < 1) throw new Error('gatherRows: x needs at least one dimension');
  const rows = x.shape[0];
  const cols = x.size / Math.max(rows, 1);
  const idx = index instanceof Int32Array ? index : Int32Array.from(index);
  for (let i = 0; i < idx.length; i++)
    if (!(idx[i] >= 0 && idx[i] < rows) || idx[i] !== (index as ArrayLike<number>)[i])
      throw new Error(`gatherRows: index ${(index as ArrayLike<number>)[i]} at position ${i} is out of range for ${shapeStr(x.shape)}`);
  const B = backend(x.device);
  const out = Tensor.empty([idx.length, ...x.shape.slice(1)], x.device); // every row is written
  B.gather_rows_forward(out.buffer, x.buffer, idx, rows, cols);
  return record('gatherRows', out, [x], (g) => {
    const dx = Tensor.zeros(x.shape, x.device);
    B.gather_rows_backward(dx.buffer, g.buffer, idx, rows, cols);
    return [dx];
  });
}

/** Copies src into dst as a block along an axis (the shared core of concat and slice). */
function blockCopy(dst: Tensor, src: Tensor, axis: number, dstStart: number, srcStart: number, len: number, accumulate: boolean): void {
  const outer = shapeSize(dst.shape.slice(0, axis));
  const inner = shapeSize(dst.shape.slice(axis + 1));
  backend(dst.device).block_copy(
    dst.buffer, src.buffer, outer, len * inner,
    dst.shape[axis] * inner, dstStart * inner,
    src.shape[axis] * inner, srcStart * inner, accumulate,
  );
}

/**
 * The gradient of an input whose positions [start, start + block.shape[axis]) of an axis received
 * `block` and the rest nothing (a slice's, a reduction over a range): autograd adds it in place.
 */
export function axisBlockGrad(block: Tensor, axis: number, start: number): BlockGrad {
  return { block, addInto: (dst, acc) => blockCopy(dst, block, axis, start, 0, block.shape[axis], acc) };
}

export function concat(tensors: Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new Error('concat: no tensors');
  sameDevice('concat', ...tensors);
  const first = tensors[0];
  const a = normAxis('concat', first.ndim, axis);
  for (const t of tensors)
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i]))
      throw new Error(`concat: shapes ${tensors.map((x) => shapeStr(x.shape)).join(', ')} differ outside axis ${axis}`);
  const total = tensors.reduce((s, t) => s + t.shape[a], 0);
  const out = Tensor.empty(first.shape.map((d, i) => (i === a ? total : d)), first.device); // the blocks cover it
  let off = 0;
  const starts: number[] = [];
  for (const t of tensors) {
    starts.push(off);
    blockCopy(out, t, a, off, 0, t.shape[a], false);
    off += t.shape[a];
  }
  return record('concat', out, tensors, (g) =>
    tensors.map((t, i) => {
      const d = Tensor.empty(t.shape, t.device);
      blockCopy(d, g, a, 0, starts[i], t.shape[a], false);
      return d;
    }),
  );
}

/** x[..., start:end, ...] along one axis (a copy). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis('slice', x.ndim, axis);
  const n = x.shape[a];
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start > end)
    throw new Error(`slice: range [${start}, ${end}) is invalid for axis ${axis} of ${shapeStr(x.shape)}`);
  const out = Tensor.empty(x.shape.map((d, i) => (i === a ? end - start : d)), x.device);
  blockCopy(out, x, a, 0, start, end - start, false);
  // the gradient is g where the slice was, zero elsewhere: added in place (autograd's BlockGrad)
  return record('slice', out, [x], (g) => [axisBlockGrad(g, a, start)]);
}

/** [R, C] -> [C, R]. */
export function transpose2d(x: Tensor): Tensor {
  if (x.ndim !== 2) throw new Error(`transpose2d: expected a 2-D tensor, received ${shapeStr(x.shape)}`);
  const [R, C] = x.shape;
  const B = backend(x.device);
  const out = Tensor.empty([C, R], x.device);
  B.transpose2d(out.buffer, x.buffer, R, C);
  return record('transpose2d', out, [x], (g) => {
    const dx = Tensor.empty([R, C], x.device);
    B.transpose2d(dx.buffer, g.buffer, C, R);
    return [dx];
  });
}
