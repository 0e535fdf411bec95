/**
 * losses.ts: HR-Pro stage-1 losses for one video (SPEC §2 "Losses"), weights [0, 0.5, 1, 1]:
 *   video BCE (weight 0: computed, not used), the focal-weighted action frame loss on point
 *   snippets, the background frame loss on background seeds, and the contrastive loss of the
 *   embedded features against the prototype memory (eq. 7); plus the memory's momentum update.
 * The focal weight (1 - p_t)^2 is not detached, as in the reference.
 */
import * as ops from '../../ops';
import { Tensor, noGrad, tidy } from '../../tensor/tensor';
import { Stage1Output } from './stage1';
import { Seeds, regionRows, rowsWhere } from './pseudo_labels';

export interface Stage1LossWeights {
  video: number;
  frame: number;
  background: number;
  contrastive: number;
}
export const STAGE1_LOSS_WEIGHTS: Stage1LossWeights = { video: 0, frame: 0.5, background: 1, contrastive: 1 };

export interface Stage1Losses {
  total: Tensor;
  video: number;
  frame: number;
  background: number;
  contrastive: number;
}

/**
 * Focal BCE summed over the given rows and all C + 1 columns, divided by (rows + 1e-6):
 *   sum (p + y - 2 p y)^2 * bce(p, y)
 */
export function focalFrameLoss(casFuse: Tensor, rows: number[], target: Float32Array): Tensor {
  const Cp1 = casFuse.shape[1];
  if (rows.length === 0) return Tensor.scalar(0, casFuse.device);
  const p = ops.gatherRows(casFuse, rows);
  // (1 - p_t) = p (1 - 2y) + y; the weighting, the sum and the scale in one call (ops.focalBce)
  if (target.length !== rows.length * Cp1) throw new Error(`focalFrameLoss: target has ${target.length} values for ${rows.length} rows of ${Cp1}`);
  return ops.focalBce(p, target, 1 / (rows.length + 1e-6));
}

/**
 * Contrastive loss (eq. 7): for each class c present with action-seed rows A and background rows
 * B, with s(x, m) = exp(x . m / tau) on L2-normalised x and m:
 *   a_k = mean_{x in A} s(x, m_k), b_c = mean_{x in B} s(x, m_c)
 *   l_c = 0.5 (-log a_c / sum_k a_k) + 0.5 (-log a_c / (a_c + b_c));  averaged over classes present
 */
export function contrastiveLoss(embedded: Tensor, memory: Tensor, seeds: Seeds, classes: number[], C: number, tau = 0.1): Tensor {
  const T = embedded.shape[0];
  const bkgRows = regionRows(seeds.bkg, T);
  if (bkgRows.length === 0 || classes.length === 0) return Tensor.scalar(0, embedded.device);
  const D = embedded.shape[1];
  const protos = noGrad(() => ops.l2Normalize(memory.reshape([C, D])));
  // mean_r exp(normalize(x_r) . m / tau), one call each way (ops.similarityMean)
  const sim = (rows: number[]): Tensor => ops.similarityMean(embedded, rows, protos, 1 / tau);
  const b = sim(bkgRows);
  const as: Tensor[] = [];
  const present: number[] = [];
  for (const c of classes) {
    const actRows = regionRows(seeds.act, T, C, c);
    if (actRows.length === 0) continue;
    as.push(sim(actRows));
    present.push(c);
  }
  if (!as.length) return Tensor.scalar(0, embedded.device);
  // per class c: 0.5 (-log a_c / sum_k a_k) + 0.5 (-log a_c / (a_c + b_c)), summed, / classes (one call)
  return ops.contrastiveTerms(as, b, present, 1 / classes.length);
}

/** The losses of one training video. points: [T, C] multi-hot; labels: [C] video labels. */
export function stage1Losses(
  out: Stage1Output,
  points: Float32Array,
  labels: Float32Array,
  seeds: Seeds,
  memory: Tensor,
  weights: Stage1LossWeights = STAGE1_LOSS_WEIGHTS,
): Stage1Losses {
  const [T, Cp1] = out.casFuse.shape;
  const C = Cp1 - 1;
  const classes = [...labels.keys()].filter((c) => labels[c] > 0);
  const video = ops.bce(out.vidScore, Tensor.from(labels, [C], out.vidScore.device));
  // action frame loss: point rows, target [one-hot point classes, 0]
  const pointRows: number[] = [];
  for (let t = 0; t < T; t++) if (points.subarray(t * C, t * C + C).some((v) => v > 0)) pointRows.push(t);
  const actTarget = new Float32Array(pointRows.length * Cp1);
  pointRows.forEach((t, i) => actTarget.set(points.subarray(t * C, t * C + C), i * Cp1));
  const frame = focalFrameLoss(out.casFuse, pointRows, actTarget);
  // background frame loss: background seeds, target one-hot on the background column
  const bkgRows = rowsWhere(seeds.bkg, T);
  const bkgTarget = new Float32Array(bkgRows.length * Cp1);
  bkgRows.forEach((_, i) => (bkgTarget[i * Cp1 + C] = 1));
  const background = focalFrameLoss(out.casFuse, bkgRows, bkgTarget);
  const contrastive = contrastiveLoss(out.embedded, memory, seeds, classes, C);
  // one call: each term scaled, then ((video + frame) + (background + contrastive)), as before
  const total = ops.weightedSum([video, frame, background, contrastive], [weights.video, weights.frame, weights.background, weights.contrastive]);
  return { total, video: video.item(), frame: frame.item(), background: background.item(), contrastive: contrastive.item() };
}

/**
 * Momentum update of the prototypes after a training video (SPEC §2):
 *   m_c = (1 - momentum) m_c + momentum * mean(E at the action seeds of c), for each class present.
 */
export function updateMemory(memory: Tensor, embedded: Tensor, seeds: Seeds, labels: Float32Array, momentum = 0.001): void {
  const [T, D] = embedded.shape;
  const C = labels.length;
  noGrad(() =>
    tidy(() => {
      const m = memory.toArray();
      for (let c = 0; c < C; c++) {
        if (!(labels[c] > 0)) continue;
        const rows = rowsWhere(seeds.act, T, C, c);
        if (!rows.length) continue;
        const mean = ops.mean(ops.gatherRows(embedded, rows), 0).toArray();
        for (let d = 0; d < D; d++) m[c * D + d] = (1 - momentum) * m[c * D + d] + momentum * mean[d];
      }
      memory.buffer.write(m);
    }),
  );
}
