/**
 * stage1.ts: HR-Pro's snippet-level model (SPEC §2), `S_Model` in the reference, with its
 * parameter names (SPEC §8) so a PyTorch checkpoint exported to safetensors loads by name.
 *
 *   tokens = [X (T x D); prototype tokens (C x D)]  -> 2 x RAB -> first T rows (the last RAB
 *   computes only those)
 *   E = relu(conv3(.))                          the embedded feature   [T, D]
 *   cas = sigmoid(conv1(dropout0.7(E)))         [T, C + 1], last column = background
 *   cas_P = cas_S * (1 - bkg), cas_fuse = [cas_P, bkg]
 *   video score = per class mean of the top max(1, T // 8) values of cas_S (classes absent from
 *   a training video use the mean over all T instead)
 */
import * as ops from '../../ops';
import { Affine, Buffer, Conv1d, Dropout, Module } from '../../nn';
import { Tensor, noGrad } from '../../tensor/tensor';
import { DeferredBackward } from '../../tensor/autograd';
import { Rng } from '../../util/rng';
import { Device } from '../../runtime/backend';
import { ReliabilityAwareBlock, RabOptions, RabProjections } from './rab';

export interface Stage1Options {
  featureDim: number;
  numClasses: number;
  /** RAB layers (2), heads (8), FFN width (128), dropout (0.3), attention dropout (0.1) */
  layers: number;
  rab: RabOptions;
  /** classifier dropout (0.7) */
  dropout: number;
  /** top-k ratio: k = max(1, T // rAct) (8) */
  rAct: number;
  /**
   * Build the prototype tokens as the reference does, by reshaping the [C, 1, D] memory to
   * [D, C] (each token mixes all prototypes' channels). Off: one token per class (SPEC §2).
   */
  prototypeReshape: boolean;
  device?: Device;
}

export const STAGE1_DEFAULTS: Omit<Stage1Options, 'featureDim' | 'numClasses'> = {
  layers: 2,
  rab: { heads: 8, feedForward: 128, dropout: 0.3, attentionDropout: 0.1 },
  dropout: 0.7,
  rAct: 8,
  prototypeReshape: false,
};

export interface Stage1Output {
  /** [T, C + 1] fused scores: cas_S * (1 - bkg), then bkg */
  casFuse: Tensor;
  /** [T, C] fused class scores cas_P = cas_S * (1 - bkg): the scores inference builds proposals from */
  casP: Tensor;
  /** [T, C] class-specific scores */
  casS: Tensor;
  /** [T, 1] background score */
  bkg: Tensor;
  /** [C] video-level scores */
  vidScore: Tensor;
  /** [T, D] embedded features */
  embedded: Tensor;
}

export class ReliableMemory extends Module {
  /** [C, 1, D]: one prototype per class, updated by momentum, never by gradient */
  proto_vectors: Buffer;
  constructor(readonly numClasses: number, readonly dim: number, device: Device = 'cpu') {
    super();
    this.proto_vectors = new Buffer(Tensor.zeros([numClasses, 1, dim], device));
  }
  get tensor(): Tensor {
    return this.proto_vectors.tensor;
  }
}

export class Encoder extends Module {
  RAB: ReliabilityAwareBlock[];
  feature_embedding: [Conv1d];
  constructor(o: Stage1Options, rng: Rng) {
    super();
    this.RAB = Array.from({ length: o.layers }, () => new ReliabilityAwareBlock(o.featureDim, o.rab, rng, o.device));
    this.feature_embedding = [new Conv1d(o.featureDim, o.featureDim, 3, rng, { padding: 1, device: o.device })];
  }
  forward(x: Tensor, protoTokens: Tensor, projections?: ComposedProjections): Tensor {
    const T = x.shape[0];
    let h = this.RAB.length ? ops.concat([x, protoTokens], 0) : x;
    // every block sees all tokens; the last computes only the snippets' rows, the ones kept
    const last = this.RAB.length - 1;
    this.RAB.forEach((layer, i) => (h = layer.forward(h, projections?.layers[i], i === last ? T : undefined)));
    return ops.relu(this.feature_embedding[0].forward(h));
  }
}

/**
 * Every RAB's in-projections (rab.ts: q and k branches composed, v sliced out of in_proj), for
 * many forward passes at once: a test pass, or a training step's videos. In a training step the passes' gradients gather on the composed maps
 * and `flush()` carries them to the parameters once, before the optimizer step; under `noGrad`
 * there is nothing to flush. Valid until the parameters change: compose again after each step.
 */
export class ComposedProjections {
  readonly layers: RabProjections[];
  private readonly deferred: DeferredBackward<Tensor[]>;
  constructor(blocks: ReliabilityAwareBlock[]) {
    this.deferred = new DeferredBackward(() =>
      blocks.flatMap((b) => {
        const p = b.composedProjections();
        return [p.query.weight, p.query.bias, p.key.weight, p.key.bias, p.value.weight, p.value.bias];
      }),
    );
    const t = this.deferred.leaves;
    const affine = (i: number): Affine => ({ weight: t[i], bias: t[i + 1] });
    this.layers = blocks.map((_, i) => ({ query: affine(6 * i), key: affine(6 * i + 2), value: affine(6 * i + 4) }));
  }
  /** The gradients gathered since the last flush, into conv_query, conv_key and in_proj. */
  flush(): void {
    this.deferred.flush();
  }
  dispose(): void {
    this.deferred.dispose();
  }
}

export class Stage1Model extends Module {
  memory: ReliableMemory;
  encoder: Encoder;
  classifier: [Dropout, Conv1d];
  readonly options: Stage1Options;

  constructor(options: Partial<Stage1Options> & Pick<Stage1Options, 'featureDim' | 'numClasses'>, rng: Rng) {
    super();
    const o: Stage1Options = { ...STAGE1_DEFAULTS, ...options, rab: { ...STAGE1_DEFAULTS.rab, ...(options.rab ?? {}) } };
    this.options = o;
    if (!(o.featureDim > 0 && o.featureDim % o.rab.heads === 0))
      throw new Error(`Stage1Model: featureDim ${o.featureDim} must be a positive multiple of the ${o.rab.heads} heads`);
    this.memory = new ReliableMemory(o.numClasses, o.featureDim, o.device);
    this.encoder = new Encoder(o, rng);
    this.classifier = [new Dropout(o.dropout, rng), new Conv1d(o.featureDim, o.numClasses + 1, 1, rng, { bias: false, device: o.device })];
  }

  /** The C prototype tokens [C, D] the encoder appends to the snippets. */
  prototypeTokens(): Tensor {
    const { numClasses: C, featureDim: D } = this.options;
    const m = this.memory.tensor;
    if (!this.options.prototypeReshape) return noGrad(() => m.reshape([C, D]));
    // the reference: view the flat [C, 1, D] memory as [D, C]; token c is column c
    return noGrad(() => ops.transpose2d(m.reshape([D, C])));
  }

  /** The encoder's q and k branches composed, for forward passes until the parameters change. */
  composeProjections(): ComposedProjections {
    return new ComposedProjections(this.encoder.RAB);
  }

  /**
   * One video: features [T, D]. videoLabels (training only) switches absent classes' video scores
   * to the mean over time. `projections` (this model's, composed since its last parameter change)
   * take q and k through one GEMM each.
   */
  forward(features: Tensor, videoLabels?: Float32Array, projections?: ComposedProjections): Stage1Output {
    const { numClasses: C, featureDim: D } = this.options;
    if (features.ndim !== 2 || features.shape[1] !== D)
      throw new Error(`Stage1Model: expected features [T, ${D}], received [${features.shape.join(', ')}]`);
    const T = features.shape[0];
    if (T < 1) throw new Error('Stage1Model: a video needs at least one snippet');
    const embedded = this.encoder.forward(features, this.prototypeTokens(), projections);
    const cas = ops.sigmoid(this.classifier[1].forward(this.classifier[0].forward(embedded)));
    const casS = ops.slice(cas, 1, 0, C);
    const bkg = ops.slice(cas, 1, C, C + 1);
    const casP = ops.mul(casS, ops.affine(bkg, -1, 1));
    const casFuse = ops.concat([casP, bkg], 1);
    const k = Math.max(1, Math.floor(T / this.options.rAct));
    let vidScore = ops.topkMean(casS, k);
    if (videoLabels) {
      const y = Tensor.from(videoLabels, [C], features.device);
      vidScore = ops.blend(vidScore, ops.mean(casS, 0), y); // vidScore y + mean (1 - y), one call
    }
    return { casFuse, casP, casS, bkg, vidScore, embedded };
  }
}
