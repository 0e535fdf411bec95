/**
 * losses.ts: TSPNet's two losses of one video (SPEC §5), as the reference's PTAL_Loss:
 *   point    = mean over proposals of -sum_c y_c log_softmax(logits x sigmoid(attention))_c, with
 *              y = [point label, 1 when the label is all zero] (C + 1 columns, unnormalised multi-hot)
 *   saliency = mean over proposals of (sigmoid(center) - center target)^2
 *   total    = pointWeight x point + saliencyWeight x saliency   (1 and 20)
 */
import * as ops from '../../ops';
import { Tensor } from '../../tensor/tensor';
import type { TspNetOutput } from './model';
import type { ProposalLabels } from './labels';

export interface TspNetLossValues {
  total: Tensor;
  point: number;
  saliency: number;
}

/** [M, C + 1] targets: the point label and the background column. */
export function pointTargets(label: Float32Array, M: number, C: number): Float32Array {
  const y = new Float32Array(M * (C + 1));
  for (let m = 0; m < M; m++) {
    let any = false;
    for (let c = 0; c < C; c++) {
      const v = label[m * C + c];
      y[m * (C + 1) + c] = v;
      if (v !== 0) any = true;
    }
    if (!any) y[m * (C + 1) + C] = 1;
  }
  return y;
}

export function tspnetLosses(out: TspNetOutput, labels: Pick<ProposalLabels, 'label' | 'center'>, weights: { pointWeight: number; saliencyWeight: number }): TspNetLossValues {
  const [M, C1] = out.logits.shape;
  const dev = out.logits.device;
  const scaled = ops.mul(out.logits, ops.sigmoid(out.attention));
  const y = Tensor.from(pointTargets(labels.label, M, C1 - 1), [M, C1], dev);
  const point = ops.neg(ops.meanAll(ops.sum(ops.mul(y, ops.logSoftmax(scaled)), 1)));
  const saliency = ops.mse(ops.sigmoid(out.center).reshape([M]), Tensor.from(labels.center, [M], dev));
  const total = ops.add(ops.mulScalar(point, weights.pointWeight), ops.mulScalar(saliency, weights.saliencyWeight));
  return { total, point: point.item(), saliency: saliency.item() };
}
