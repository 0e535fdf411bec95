/**
 * inference.ts: TSPNet at test time on one video (SPEC §5 "Inference", §5.1 "Test"):
 *   p = softmax(logits) [M, C + 1], a = sigmoid(attention), z = sigmoid(center)   (eval mode)
 *   video score_c = sum_m p_mc a_m / (sum_m a_m + 1e-6); classes: score >= 0.1, else the argmax
 *   every proposal once per kept class, score p_c a z (the aligned confidence, float32 as the reference)
 *   ABA per class (lib/postprocess boundaryAdaptation), Gaussian soft-NMS per class (no threshold,
 *   no top-k, "+1" IoU in snippets unless exactIoU), the ambiguous filter on integer snippet ranges;
 *   detections are returned in seconds.
 * Results do not depend on `chunk`: proposals are independent through the network.
 */
import * as ops from '../../ops';
import { noGrad, tidy } from '../../tensor/tensor';
import { boundaryAdaptation, softNms, Proposal } from '../../postprocess';
import { filterAmbiguous } from '../../eval/ambiguous';
import type { Detection } from '../../eval/detection';
import type { TspNetModel } from './model';
import type { VideoProposals } from './proposals';
import type { TspNetConfig } from './config';

export interface ProposalScores {
  M: number;
  C: number;
  /** [M, C + 1] softmax */
  p: Float32Array;
  /** [M] sigmoid(attention) */
  a: Float32Array;
  /** [M] sigmoid(center) */
  z: Float32Array;
}

export type InferenceOptions = Pick<TspNetConfig, 'classThreshold' | 'abaThreshold' | 'softNmsSigma' | 'exactIoU' | 'featureFps' | 'snippetFrames' | 'chunk'>;

/** The three heads' probabilities for all of a video's proposals (eval mode, no gradient). */
export function scoreProposals(model: TspNetModel, v: { features: Float32Array; T: number }, props: Float32Array, chunk: number): ProposalScores {
  const M = props.length / 2;
  const C = model.options.numClasses;
  const p = new Float32Array(M * (C + 1));
  const a = new Float32Array(M);
  const z = new Float32Array(M);
  const wasTraining = model.training;
  model.eval();
  try {
    for (let lo = 0; lo < M; lo += chunk) {
      const hi = Math.min(M, lo + chunk);
      noGrad(() =>
        tidy(() => {
          const out = model.run(v.features, v.T, props.subarray(2 * lo, 2 * hi));
          p.set(ops.softmax(out.logits).toArray(), lo * (C + 1));
          a.set(ops.sigmoid(out.attention).toArray(), lo);
          z.set(ops.sigmoid(out.center).toArray(), lo);
        }),
      );
    }
  } finally {
    model.train(wasTraining);
  }
  return { M, C, p, a, z };
}

/** Video-level class scores [C]: the attention-weighted mean of the softmax over the proposals. */
export function videoScores(s: ProposalScores): Float64Array {
  const { M, C, p, a } = s;
  const out = new Float64Array(C);
  let asum = 0;
  for (let m = 0; m < M; m++) asum += a[m];
  for (let c = 0; c < C; c++) {
    let num = 0;
    for (let m = 0; m < M; m++) num += Math.fround(p[m * (C + 1) + c] * a[m]);
    out[c] = num / (asum + 1e-6);
  }
  return out;
}

/** Classes with score >= threshold in ascending order, or the first argmax when none is. */
export function keptClasses(scores: Float64Array, threshold: number): number[] {
  const kept: number[] = [];
  scores.forEach((x, c) => x >= threshold && kept.push(c));
  if (kept.length) return kept;
  let best = 0;
  for (let c = 1; c < scores.length; c++) if (scores[c] > scores[best]) best = c;
  return [best];
}

/** Ambiguous segments (seconds) in snippets, as the reference compares them. */
export function ambiguousInSnippets(ambiguous: Map<string, [number, number][]> | undefined, o: Pick<InferenceOptions, 'featureFps' | 'snippetFrames'>): Map<string, [number, number][]> | undefined {
  if (!ambiguous) return undefined;
  return new Map([...ambiguous].map(([k, list]) => [k, list.map(([s, e]) => [(s * o.featureFps) / o.snippetFrames, (e * o.featureFps) / o.snippetFrames] as [number, number])]));
}

/**
 * Detections of one video (seconds) from its proposals. `ambiguousSnippets`: the ambiguous list
 * already in snippets (ambiguousInSnippets), applied to this video's name.
 */
export function tspnetDetect(
  model: TspNetModel,
  v: { features: Float32Array; T: number; name: string },
  proposals: VideoProposals,
  classNames: string[],
  o: InferenceOptions,
  ambiguousSnippets?: Map<string, [number, number][]>,
): { detections: Detection[]; videoScores: Float64Array } {
  const props = proposals.snippets32;
  const s = scoreProposals(model, v, props, o.chunk);
  const { M, C, p, a, z } = s;
  const vs = videoScores(s);
  const kept: Proposal[] = [];
  for (const c of keptClasses(vs, o.classThreshold)) {
    const cls: Proposal[] = new Array(M);
    for (let m = 0; m < M; m++) cls[m] = { classIndex: c, score: Math.fround(Math.fround(p[m * (C + 1) + c] * a[m]) * z[m]), start: props[2 * m], end: props[2 * m + 1] };
    kept.push(...softNms(boundaryAdaptation(cls, { iouThreshold: o.abaThreshold }), { sigma: o.softNmsSigma, exactIoU: o.exactIoU }));
  }
  let dets: Detection[] = kept.map((q) => ({ label: classNames[q.classIndex], score: q.score, segment: [q.start, q.end] }));
  if (ambiguousSnippets) dets = filterAmbiguous(v.name, dets, ambiguousSnippets);
  const sps = o.snippetFrames / o.featureFps;
  for (const d of dets) d.segment = [d.segment[0] * sps, d.segment[1] * sps];
  return { detections: dets, videoScores: vs };
}
