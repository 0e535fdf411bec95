/**
 * stage2.ts: HR-Pro stage 2, instance-level completeness learning (SPEC §4). Parameter names and
 * shapes as the reference's I_Model (SPEC §8): bcr.start_reg_conv.{0,2}, bcr.end_reg_conv.{0,2},
 * bcr.prop_fusion.0, bcr.prop_completeness.{0,2}, so a PyTorch checkpoint loads by name.
 *
 * Per video and proposal [s, e] (snippets):
 *   F [12, D]   RoI align of the proposal extended by 25% a side, on the features padded with zeros
 *               and shifted by 0.5 (torchvision roi_align, aligned = false)
 *   f_s, f_c, f_e = max over bins [0, 2), [2, 10), [10, 12)
 *   completeness = sigmoid(conv(relu(conv(dropout(relu(linear([f_c - f_s, f_c, f_c - f_e])))))))
 *   start/end offsets = conv(relu(conv(f_s))), conv(relu(conv(f_e)));  refined = [s + ds w, e + de w]
 */
import * as ops from '../../ops';
import { Tensor, noGrad } from '../../tensor/tensor';
import { Module } from '../../nn/module';
import { Conv1d, Dropout, Linear, ReLU } from '../../nn/layers';
import { Rng } from '../../util/rng';
import { Device } from '../../runtime/backend';

export interface Stage2Options {
  featureDim: number;
  /** RoI bins (12) */
  roiBins: number;
  /** proposal extension on each side, as a fraction of its length (0.25) */
  extension: number;
  /** dropout after the boundary-sensitive fusion (0.7) */
  dropout: number;
  device: Device;
}

export const STAGE2_DEFAULTS: Omit<Stage2Options, 'featureDim'> = { roiBins: 12, extension: 0.25, dropout: 0.7, device: 'cpu' };

/** A two-layer 1x1-conv head D -> D/2 -> 1, as nn.Sequential(Conv1d, ReLU, Conv1d). */
function head(D: number, rng: Rng, device: Device): [Conv1d, ReLU, Conv1d] {
  return [new Conv1d(D, D / 2, 1, rng, { device }), new ReLU(), new Conv1d(D / 2, 1, 1, rng, { device })];
}

function applyAll(x: Tensor, layers: { forward(x: Tensor): Tensor }[]): Tensor {
  return layers.reduce((h, l) => l.forward(h), x);
}

export class BoundaryCompletenessRegressor extends Module {
  start_reg_conv: [Conv1d, ReLU, Conv1d];
  end_reg_conv: [Conv1d, ReLU, Conv1d];
  prop_fusion: [Linear, ReLU, Dropout];
  prop_completeness: [Conv1d, ReLU, Conv1d];
  constructor(D: number, dropout: number, rng: Rng, device: Device) {
    super();
    // construction order = the reference's, so a seeded initialisation draws in the same order
    this.start_reg_conv = head(D, rng, device);
    this.end_reg_conv = head(D, rng, device);
    this.prop_fusion = [new Linear(3 * D, D, rng, { device }), new ReLU(), new Dropout(dropout, rng)];
    this.prop_completeness = head(D, rng, device);
  }
}

export interface Stage2Output {
  /** [M] completeness in (0, 1) */
  completeness: Tensor;
  /** [M] start and end offsets, in proposal lengths */
  startOffset: Tensor;
  endOffset: Tensor;
}

export class Stage2Model extends Module {
  bcr: BoundaryCompletenessRegressor;
  readonly options: Stage2Options;
  constructor(options: Partial<Stage2Options> & Pick<Stage2Options, 'featureDim'>, rng: Rng) {
    super();
    const o: Stage2Options = { ...STAGE2_DEFAULTS, ...options };
    if (!(Number.isInteger(o.featureDim) && o.featureDim >= 2 && o.featureDim % 2 === 0))
      throw new Error(`Stage2Model: featureDim must be an even integer >= 2, received ${o.featureDim}`);
    if (!(Number.isInteger(o.roiBins) && o.roiBins >= 6)) throw new Error(`Stage2Model: roiBins must be an integer >= 6, received ${o.roiBins}`);
    this.options = o;
    this.bcr = new BoundaryCompletenessRegressor(o.featureDim, o.dropout, rng, o.device);
  }

  /** RoI features [M, bins, D] of proposals [M, 2] (snippets) on one video's features [T, D]. */
  proposalFeatures(features: Float32Array, T: number, proposals: Float32Array): Tensor {
    return proposalFeatures(features, T, this.options.featureDim, proposals, this.options);
  }

  /** Scores and offsets from RoI features [M, bins, D]. */
  forward(roi: Tensor): Stage2Output {
    const { start: fs, end: fe, fusionInput } = roiParts(roi, this.options.roiBins);
    const fused = applyAll(fusionInput, this.bcr.prop_fusion);
    const M = roi.shape[0];
    const completeness = ops.sigmoid(applyAll(fused, this.bcr.prop_completeness)).reshape([M]);
    const startOffset = applyAll(fs, this.bcr.start_reg_conv).reshape([M]);
    const endOffset = applyAll(fe, this.bcr.end_reg_conv).reshape([M]);
    return { completeness, startOffset, endOffset };
  }
}

/**
 * RoI features [M, bins, D] in three parts, each max-pooled over its bins: start (the first
 * roi_size // 6 bins, as the reference), center (the middle two thirds), end (the last sixth); and
 * the fusion layer's input [M, 3D] = [center - start, center, center - end]. HR-Pro's stage 2 and
 * TSPNet's backbone both begin so. The pools read the bins in place (ops.maxOver: no slice copies).
 */
export function roiParts(roi: Tensor, bins: number): { start: Tensor; center: Tensor; end: Tensor; fusionInput: Tensor } {
  const edge = Math.floor(bins / 6); // 2 of 12: the reference's roi_size // 6
  const start = ops.maxOver(roi, 1, 0, edge);
  const center = ops.maxOver(roi, 1, edge, edge * 5);
  const end = ops.maxOver(roi, 1, edge * 5, bins);
  return { start, center, end, fusionInput: ops.concat([ops.sub(center, start), center, ops.sub(center, end)], 1) };
}

/**
 * The reference's extract_roi_features for one video: extend each proposal by `extension` of its
 * length a side, pad the features with ceil(extension x longest) + 1 zero rows at both ends, shift
 * the RoIs by pad - 0.5 and RoI-align (adaptive sampling, aligned = false). No gradient flows to the
 * features (they are data).
 */
export function proposalFeatures(
  features: Float32Array,
  T: number,
  D: number,
  proposals: Float32Array,
  o: Pick<Stage2Options, 'roiBins' | 'extension' | 'device'>,
): Tensor {
  if (features.length !== T * D) throw new Error(`proposalFeatures: ${features.length} feature values are not T x D = ${T} x ${D}`);
  if (proposals.length % 2) throw new Error('proposalFeatures: proposals must hold [start, end] pairs');
  const M = proposals.length / 2;
  let longest = -Infinity;
  for (let m = 0; m < M; m++) {
    const s = proposals[2 * m];
    const e = proposals[2 * m + 1];
    // NaN/Inf boundaries (from non-finite features or scores) would make the padding's size NaN or astronomically large
    if (!Number.isFinite(s) || !Number.isFinite(e) || Math.abs(s) > 1e7 || Math.abs(e) > 1e7)
      throw new Error(`proposalFeatures: proposal ${m} [${s}, ${e}] (snippets) is not finite or beyond 1e7 snippets; the features or model outputs hold NaN/Inf or huge values`);
    longest = Math.max(longest, Math.fround(e - s));
  }
  // at least one row: a set of inverted refined proposals would make the reference's pad negative
  const pad = M ? Math.max(1, Math.ceil(Math.fround(o.extension * longest)) + 1) : 1;
  const padded = new Float32Array((T + 2 * pad) * D);
  padded.set(features, pad * D);
  const rois = new Float32Array(2 * M);
  for (let m = 0; m < M; m++) {
    const s = proposals[2 * m];
    const e = proposals[2 * m + 1];
    const len = Math.fround(e - s);
    rois[2 * m] = Math.fround(Math.fround(s - Math.fround(o.extension * len)) + pad) - 0.5;
    rois[2 * m + 1] = Math.fround(Math.fround(e + Math.fround(o.extension * len)) + pad) - 0.5;
  }
  return noGrad(() => ops.roiAlign1d(Tensor.from(padded, [T + 2 * pad, D], o.device), rois, { bins: o.roiBins, samplingRatio: 0, aligned: false }));
}

/** Refined proposals [M, 2] from the offsets: [s + ds (e - s), e + de (e - s)], differentiable. */
export function refineProposals(proposals: Float32Array, out: Stage2Output): { start: Tensor; end: Tensor } {
  const M = proposals.length / 2;
  const s = new Float32Array(M);
  const e = new Float32Array(M);
  const w = new Float32Array(M);
  for (let m = 0; m < M; m++) {
    s[m] = proposals[2 * m];
    e[m] = proposals[2 * m + 1];
    w[m] = e[m] - s[m];
  }
  const dev = out.startOffset.device;
  const width = Tensor.from(w, [M], dev);
  return {
    start: ops.add(Tensor.from(s, [M], dev), ops.mul(out.startOffset, width)),
    end: ops.add(Tensor.from(e, [M], dev), ops.mul(out.endOffset, width)),
  };
}
