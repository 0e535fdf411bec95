/**
 * evaluate.ts: test passes of both stages over a split, as the reference's S_test and I_test run
 * them: every video's detections (and stage 1's scores and raw candidates), then mAP against the
 * split's ground truth (SPEC §6) with the blocked videos left out.
 */
import { evaluateDetection } from '../../eval/detection';
import type { OnProgress } from '../../util/progress';
import type { DetectionResults, EvalResult, GroundTruth } from '../../eval/detection';
import type { Proposal } from '../../postprocess';
import type { ComposedProjections, Stage1Model } from './stage1';
import { noGrad } from '../../tensor/tensor';
import type { Stage2Model } from './stage2';
import type { Stage2TrainConfig } from './config';
import { Stage1InferenceOptions, Stage1Scores, scoreVideo, stage1Candidates, stage1Detections, stage2Detect } from './inference';
import { testProposals } from './proposals';
import type { ProposalsFile } from '../../formats/proposals';
import { Stage1Video, groundTruthOf } from './videos';
import { emptyRecord } from '../../formats/text';

export { meanMap } from '../../train/loop';

export interface TestPass {
  results: DetectionResults;
  candidates: Map<string, Proposal[]>;
  scores: Map<string, Stage1Scores>;
  evaluation: EvalResult | null;
  seconds: number;
}

/** Runs the model over videos: scores, raw candidates, final detections, and mAP when gt is given. */
export function testStage1(
  model: Stage1Model,
  videos: Stage1Video[],
  classNames: string[],
  cfg: Stage1InferenceOptions & { tiou: number[] },
  opts: {
    ambiguous?: Map<string, [number, number][]>;
    blockedVideos?: string[];
    evaluate?: boolean;
    groundTruth?: GroundTruth;
    /** the model's composed projections, for callers that run several passes on the same weights */
    projections?: ComposedProjections;
    /** called after each video (a progress bar: lib/util/progress.ts's progressCallback) */
    onVideo?: OnProgress;
  } = {},
): TestPass {
  const t0 = Date.now();
  const results: DetectionResults = emptyRecord();
  const candidates = new Map<string, Proposal[]>();
  const scores = new Map<string, Stage1Scores>();
  const projections = opts.projections ?? noGrad(() => model.composeProjections());
  try {
    videos.forEach((v, i) => {
      const s = scoreVideo(model, v.features, v.T, projections);
      const cands = stage1Candidates(s, cfg);
      scores.set(v.name, s);
      candidates.set(v.name, cands);
      results[v.name] = stage1Detections(v.name, cands, classNames, cfg, opts.ambiguous);
      opts.onVideo?.(i + 1, videos.length);
    });
  } finally {
    if (projections !== opts.projections) projections.dispose();
  }
  const evaluation = opts.evaluate !== false ? scoreResults(results, videos, classNames, cfg.tiou, opts) : null;
  return { results, candidates, scores, evaluation, seconds: (Date.now() - t0) / 1000 };
}

/** mAP of a test pass's detections against the videos' ground truth (or the given one). */
export function scoreResults(
  results: DetectionResults,
  videos: Stage1Video[],
  classNames: string[],
  tiou: number[],
  opts: { blockedVideos?: string[]; groundTruth?: GroundTruth } = {},
): EvalResult {
  const gt = opts.groundTruth ?? groundTruthOf(videos, classNames, opts.blockedVideos);
  const kept: DetectionResults = emptyRecord();
  for (const name of Object.keys(gt.videos)) if (Object.hasOwn(results, name)) kept[name] = results[name];
  // our labels are the dataset's class names; classes absent from this subset's gt score no AP
  return evaluateDetection(gt, kept, { tiou, checkUnknown: false });
}

export function testStage2(
  model: Stage2Model,
  videos: Stage1Video[],
  proposals: ProposalsFile,
  classNames: string[],
  cfg: Stage2TrainConfig,
  opts: { ambiguous?: Map<string, [number, number][]>; blockedVideos?: string[]; groundTruth?: GroundTruth; evaluate?: boolean; onVideo?: OnProgress } = {},
): { results: DetectionResults; evaluation: EvalResult | null; seconds: number } {
  const t0 = Date.now();
  const results: DetectionResults = emptyRecord();
  videos.forEach((v, i) => {
    const pp = testProposals(proposals.test[v.name]?.PP, classNames, 1 / cfg.secondsPerSnippet);
    results[v.name] = stage2Detect(model, v, pp, classNames, cfg, opts.ambiguous).detections;
    opts.onVideo?.(i + 1, videos.length);
  });
  const evaluation = opts.evaluate !== false ? scoreResults(results, videos, classNames, cfg.tiou, opts) : null;
  return { results, evaluation, seconds: (Date.now() - t0) / 1000 };
}
