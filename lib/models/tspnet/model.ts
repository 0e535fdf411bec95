/**
 * model.ts: the TSPNet plug-in's network (SPEC §5). Parameter names and shapes as the reference's
 * TSPNet_Model, so its PyTorch checkpoints load by name:
 *   prop_backbone.prop_fusion.0          Linear 3D -> D        (then ReLU, Dropout 0.5)
 *   prop_backbone.prop_classifier.{0,2}  Conv1d D -> D/2 -> C + 1 (kernel 1)
 *   prop_backbone.prop_attention.{0,2}   Conv1d D -> D/2 -> 1
 *   prop_backbone.prop_completeness.{0,2} Conv1d D -> D/2 -> 1   (the center score)
 *
 * Per proposal [s, e] (snippets): RoI features F [12, D] exactly as HR-Pro stage 2 builds them
 * (hrpro/stage2.ts proposalFeatures: 25 % extension a side, zero padding, aligned = false RoI
 * align); f_s, f_c, f_e = max over bins [0, 2), [2, 10), [10, 12); the fusion input is
 * [f_c - f_s, f_c, f_c - f_e]. Outputs are raw: class logits [M, C + 1], attention [M], center [M].
 */
import { Tensor } from '../../tensor/tensor';
import { Module } from '../../nn/module';
import { Conv1d, Dropout, Linear, ReLU } from '../../nn/layers';
import { Rng } from '../../util/rng';
import { Device } from '../../runtime/backend';
import { proposalFeatures, roiParts } from '../hrpro/stage2';

export interface TspNetOptions {
  featureDim: number;
  numClasses: number;
  /** RoI bins (12) */
  roiBins: number;
  /** proposal extension a side, as a fraction of its length (0.25) */
  extension: number;
  /** dropout after the fusion (0.5: the reference hard-codes it whatever its config says) */
  dropout: number;
  device: Device;
}

export const TSPNET_MODEL_DEFAULTS: Omit<TspNetOptions, 'featureDim' | 'numClasses'> = { roiBins: 12, extension: 0.25, dropout: 0.5, device: 'cpu' };

function head(D: number, out: number, rng: Rng, device: Device): [Conv1d, ReLU, Conv1d] {
  return [new Conv1d(D, D / 2, 1, rng, { device }), new ReLU(), new Conv1d(D / 2, out, 1, rng, { device })];
}

const applyAll = (x: Tensor, layers: { forward(x: Tensor): Tensor }[]): Tensor => layers.reduce((h, l) => l.forward(h), x);

/** The reference's Backbone_TSPNet: the fusion and the three heads, in its construction order. */
export class TspNetBackbone extends Module {
  prop_fusion: [Linear, ReLU, Dropout];
  prop_classifier: [Conv1d, ReLU, Conv1d];
  prop_attention: [Conv1d, ReLU, Conv1d];
  prop_completeness: [Conv1d, ReLU, Conv1d];
  constructor(D: number, C: number, dropout: number, rng: Rng, device: Device) {
    super();
    this.prop_fusion = [new Linear(3 * D, D, rng, { device }), new ReLU(), new Dropout(dropout, rng)];
    this.prop_classifier = head(D, C + 1, rng, device);
    this.prop_attention = head(D, 1, rng, device);
    this.prop_completeness = head(D, 1, rng, device);
  }
}

export interface TspNetOutput {
  /** [M, C + 1] class logits (the last column: background) */
  logits: Tensor;
  /** [M, 1] attention logits */
  attention: Tensor;
  /** [M, 1] center-score logits */
  center: Tensor;
}

export class TspNetModel extends Module {
  prop_backbone: TspNetBackbone;
  readonly options: TspNetOptions;
  constructor(options: Partial<TspNetOptions> & Pick<TspNetOptions, 'featureDim' | 'numClasses'>, rng: Rng) {
    super();
    const o: TspNetOptions = { ...TSPNET_MODEL_DEFAULTS, ...options };
    if (!(Number.isInteger(o.featureDim) && o.featureDim >= 2 && o.featureDim % 2 === 0))
      throw new Error(`TspNetModel: featureDim must be an even integer >= 2, received ${o.featureDim}`);
    if (!(Number.isInteger(o.numClasses) && o.numClasses >= 1)) throw new Error(`TspNetModel: numClasses must be a positive integer, received ${o.numClasses}`);
    if (!(Number.isInteger(o.roiBins) && o.roiBins >= 6)) throw new Error(`TspNetModel: roiBins must be an integer >= 6, received ${o.roiBins}`);
    this.options = o;
    this.prop_backbone = new TspNetBackbone(o.featureDim, o.numClasses, o.dropout, rng, o.device);
  }

  /** RoI features [M, bins, D] of proposals [M, 2] (snippets) on one video's features [T, D]. */
  proposalFeatures(features: Float32Array, T: number, proposals: Float32Array): Tensor {
    return proposalFeatures(features, T, this.options.featureDim, proposals, this.options);
  }

  /** The three heads' raw outputs from RoI features [M, bins, D]. */
  forward(roi: Tensor): TspNetOutput {
    const b = this.prop_backbone;
    const fused = applyAll(roiParts(roi, this.options.roiBins).fusionInput, b.prop_fusion);
    return { logits: applyAll(fused, b.prop_classifier), attention: applyAll(fused, b.prop_attention), center: applyAll(fused, b.prop_completeness) };
  }

  /** Forward from a video's features and proposals (snippets). */
  run(features: Float32Array, T: number, proposals: Float32Array): TspNetOutput {
    return this.forward(this.proposalFeatures(features, T, proposals));
  }
}
