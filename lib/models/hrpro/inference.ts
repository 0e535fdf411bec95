/**
 * inference.ts: HR-Pro inference on one video at a time, both stages.
 * Stage 1 (SPEC §2 "Stage-1 inference"):
 *   scores  = the model in eval mode: cas_P [T, C], cas_S [T, C], bkg [T], video scores [C]
 *   classes = video score >= classThreshold, or the argmax when none is
 *   candidates = multi-threshold OIC proposals on the x2-upsampled cas_P and agnostic score
 *                (native kernels, lib/postprocess): the raw proposals stage 2 and ranking use
 *   detections = class-wise Gaussian soft-NMS, then the ambiguous-segment filter (THUMOS14)
 * Stage 2 (SPEC §4 "Inference"): each PP scored with the completeness of the original and of the
 *   refined proposal, added to its OIC score; the union through soft-NMS and the ambiguous filter.
 *   Refined proposals that end before they start are dropped (the reference keeps them; they can
 *   only be false positives).
 */
import { Tensor, noGrad, tidy } from '../../tensor/tensor';
import { generateProposals, predictClasses, softNms, Proposal, ProposalOptions } from '../../postprocess';

export { predictClasses };
import { filterAmbiguous } from '../../eval/ambiguous';
import type { Detection } from '../../eval/detection';
import { ComposedProjections, Stage1Model } from './stage1';
import { Stage2Model, refineProposals } from './stage2';

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

/** Stage 1's inference: the candidate generation's options (lib/postprocess) plus the class threshold and soft-NMS. */
export interface Stage1InferenceOptions extends Omit<ProposalOptions, 'referenceAnyQuirk'> {
  /** video-level class threshold (0.5) */
  classThreshold: number;
  /** soft-NMS Gaussian sigma (0.3) */
  softNmsSigma: number;
  /** soft-NMS with exact IoU instead of the reference's "+1" lengths */
  exactIoU: boolean;
}

/**
 * The model's scores for one video [T, D], in eval mode without gradients, q and k through the
 * composed projections (rab.ts): `projections` (composed from the model's current weights) for a
 * pass over many videos, else composed for this call (D^3 a branch), so that a video's scores never
 * depend on which path computed them.
 */
export function scoreVideo(model: Stage1Model, features: Float32Array, T: number, projections?: ComposedProjections): Stage1Scores {
  const D = model.options.featureDim;
  if (features.length !== T * D) throw new Error(`scoreVideo: ${features.length} feature values are not T x D = ${T} x ${D}`);
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(() =>
      tidy(() => {
        const own = projections ? null : model.composeProjections();
        let out;
        try {
          out = model.forward(Tensor.from(features, [T, D], model.options.device), undefined, projections ?? own!);
        } finally {
          own?.dispose();
        }
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

/** Detections of one test video (seconds): original and refined proposals, fused scores, soft-NMS. */
export function stage2Detect(
  model: Stage2Model,
  v: { features: Float32Array; T: number; name: string },
  pp: { proposals: Float32Array; classIndex: Int32Array; score: Float32Array },
  classNames: string[],
  cfg: { secondsPerSnippet: number; softNmsSigma: number; exactIoU: boolean; maxProposals: number },
  ambiguous?: Map<string, [number, number][]>,
): { detections: ReturnType<typeof stage1Detections>; candidates: Proposal[] } {
  const M = pp.proposals.length / 2;
  const sps = cfg.secondsPerSnippet;
  const candidates: Proposal[] = [];
  const refinedAll: Proposal[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    // chunks bound the RoI tensor (chunk x bins x D floats)
    const chunk = Math.max(1, cfg.maxProposals);
    for (let lo = 0; lo < M; lo += chunk) {
      const hi = Math.min(M, lo + chunk);
      const props = pp.proposals.subarray(2 * lo, 2 * hi);
      noGrad(() =>
        tidy(() => {
          const out = model.forward(model.proposalFeatures(v.features, v.T, props));
          const ref = refineProposals(props, out);
          const s1 = ref.start.toArray();
          const e1 = ref.end.toArray();
          const refined = new Float32Array(2 * (hi - lo));
          for (let i = 0; i < hi - lo; i++) {
            refined[2 * i] = s1[i];
            refined[2 * i + 1] = e1[i];
          }
          const c0 = out.completeness.toArray();
          const c1 = model.forward(model.proposalFeatures(v.features, v.T, refined)).completeness.toArray();
          for (let i = 0; i < hi - lo; i++) {
            const m = lo + i;
            candidates.push({ classIndex: pp.classIndex[m], score: c0[i] + pp.score[m], start: props[2 * i] * sps, end: props[2 * i + 1] * sps });
            if (e1[i] >= s1[i]) refinedAll.push({ classIndex: pp.classIndex[m], score: c1[i] + pp.score[m], start: s1[i] * sps, end: e1[i] * sps });
          }
        }),
      );
    }
  } finally {
    model.train(wasTraining);
  }
  candidates.push(...refinedAll);
  return { detections: stage1Detections(v.name, candidates, classNames, cfg, ambiguous), candidates };
}
