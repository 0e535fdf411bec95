/**
 * roi_align.ts: 1-D RoI align over time (SPEC §4): features x [T, D], proposals [R] of
 * [start, end] in snippets -> [R, bins, D]. torchvision conventions (see native/cpu/roi_align.cc).
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { Tensor, shapeStr } from '../tensor/tensor';

export interface RoiAlignOptions {
  bins: number;
  /** samples a bin; 0 = adaptive ceil(roi length / bins), torchvision's default */
  samplingRatio?: number;
  /** shift by -0.5 (torchvision aligned=True) */
  aligned?: boolean;
}

export function roiAlign1d(x: Tensor, rois: Float32Array, options: RoiAlignOptions): Tensor {
  if (x.ndim !== 2) throw new Error(`roiAlign1d: expected x [T, D], received ${shapeStr(x.shape)}`);
  if (rois.length % 2 !== 0) throw new Error(`roiAlign1d: rois must hold [start, end] pairs, received ${rois.length} values`);
  const { bins } = options;
  const sr = options.samplingRatio ?? 0;
  const aligned = options.aligned ?? false;
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`roiAlign1d: bins must be a positive integer, received ${bins}`);
  const [T, D] = x.shape;
  const R = rois.length / 2;
  const B = backend(x.device);
  const out = Tensor.zeros([R, bins, D], x.device);
  B.roi_align_forward(out.buffer, x.buffer, rois, T, D, bins, sr, aligned);
  return record('roiAlign1d', out, [x], (g) => {
    const dx = Tensor.zeros(x.shape, x.device);
    B.roi_align_backward(dx.buffer, g.buffer, rois, T, D, bins, sr, aligned);
    return [dx];
  });
}
