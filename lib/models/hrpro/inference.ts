/**
 * inference.ts: HR-Pro stage-1 inference (SPEC §2 "Stage-1 inference") on one video at a time:
 *   scores  = the model in eval mode: cas_P [T, C], cas_S [T, C], bkg [T], video scores [C]
 *   classes = video score >= classThreshold, or the argmax when none is
 *   candidates = multi-threshold OIC proposals on the x2-upsampled cas_P and agnostic score
 *                (native kernels, lib/postprocess): the raw proposals stage 2 and ranking use
 *   detections = class-wise Gaussian soft-NMS, then the ambiguous-segment filter (THUMOS14)
 */
import { Tensor, noGrad, tidy } from '../../tensor/tensor';
import { generateProposals, predictClasses, softNms, Proposal } from '../../postprocess';

export { predictClasses };
import { filterAmbiguous } from '../../eval/ambiguous';
import type { Detection } from '../../eval/detection';
import { Stage1Model } from './stage1';

export interface Stage1Scores {
  T: number;
  /**
   * [T, C] fused class scores cas_P = cas_S * (1 - bkg) (cas_fuse without its last column): what
   * proposals, OIC scores, ranking and stage 2 are built from. The reference's test.py names this
   * slice `cas_S`; it is not the raw sigmoid (SPEC §2 "Stage-1 inference").
   */
  casP: Float32Array;
  /** [T, C] raw class-specific sigmoid scores cas_S: only the video scores (top-k) come from these */
  casS: Float32Array;
  /** [T] background score */
  bkg: Float32Array;
  /** [C] video scores (top-k mean for every class) */
  vidScore: Float32Array;
}

export interface Stage1InferenceOptions {
  /** video-level class threshold (0.5) */
  classThreshold: number;
  /** thresholds on the class score, np.arange(0, 0.25, 0.025) */
  casThresholds: number[];
  /** thresholds on 1 - bkg, np.arange(0.5, 0.725, 0.025) */
  agnosticThresholds: number[];
  /** outer band ratio of the OIC score (0.25) */
  lambda: number;
  /** weight of the video score in the proposal score (0) */
  gamma: number;
  /** upsampling factor before proposals (2) */
  scale: number;
  /** seconds per snippet: 16 frames at 25 fps */
  secondsPerSnippet: number;
  /** soft-NMS Gaussian sigma (0.3) */
  softNmsSigma: number;
  /** soft-NMS with exact IoU instead of the reference's "+1" lengths */
  exactIoU: boolean;
}

/** The model's scores for one video [T, D], in eval mode without gradients. */
export function scoreVideo(model: Stage1Model, features: Float32Array, T: number): Stage1Scores {
  const D = model.options.featureDim;
  if (features.length !== T * D) throw new Error(`scoreVideo: ${features.length} feature values are not T x D = ${T} x ${D}`);
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(() =>
      tidy(() => {
        const out = model.forward(Tensor.from(features, [T, D], model.options.device));
        return {
          T,
          casP: out.casP.toArray(),
          casS: out.casS.toArray(),
          bkg: out.bkg.toArray(),
          vidScore: out.vidScore.toArray(),
        };
      }),
    );
  } finally {
    model.train(wasTraining);
  }
}

/** The raw multi-threshold candidates of one video (seconds) on cas_P, for ranking and stage 2. */
export function stage1Candidates(scores: Stage1Scores, o: Stage1InferenceOptions): Proposal[] {
  const C = scores.vidScore.length;
  const agnostic = new Float32Array(scores.T);
  for (let t = 0; t < scores.T; t++) agnostic[t] = 1 - scores.bkg[t];
  return generateProposals(scores.casP, agnostic, scores.T, C, predictClasses(scores.vidScore, o.classThreshold), scores.vidScore, {
    casThresholds: o.casThresholds,
    agnosticThresholds: o.agnosticThresholds,
    lambda: o.lambda,
    gamma: o.gamma,
    scale: o.scale,
    secondsPerSnippet: o.secondsPerSnippet,
  });
}

/** Final detections of one video: soft-NMS per class, the ambiguous filter, named labels. */
export function stage1Detections(
  video: string,
  candidates: Proposal[],
  classNames: string[],
  o: Pick<Stage1InferenceOptions, 'softNmsSigma' | 'exactIoU'>,
  ambiguous?: Map<string, [number, number][]>,
): Detection[] {
  const kept = candidates.length ? softNms(candidates, { sigma: o.softNmsSigma, exactIoU: o.exactIoU }) : [];
  const dets: Detection[] = kept.map((p) => ({ label: classNames[p.classIndex], score: p.score, segment: [p.start, p.end] }));
  return ambiguous ? filterAmbiguous(video, dets, ambiguous) : dets;
}
