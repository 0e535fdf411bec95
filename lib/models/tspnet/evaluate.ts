/**
 * evaluate.ts: a TSPNet test pass over a split (every video's detections, then mAP against the
 * split's ground truth, SPEC §6, blocked videos left out), as the reference's test_proposal.
 */
import type { DetectionResults, EvalResult, GroundTruth } from '../../eval/detection';
import type { OnProgress } from '../../util/progress';
import type { VideoRecord } from '../../data';
import { scoreResults } from '../hrpro/evaluate';
import type { TspNetModel } from './model';
import type { VideoProposals } from './proposals';
import { ambiguousInSnippets, InferenceOptions, tspnetDetect } from './inference';
import { emptyRecord } from '../../formats/text';

export interface TspNetTestPass {
  results: DetectionResults;
  evaluation: EvalResult | null;
  seconds: number;
}

export function testTspNet(
  model: TspNetModel,
  videos: VideoRecord[],
  proposals: Map<string, VideoProposals>,
  classNames: string[],
  cfg: InferenceOptions & { tiou: number[] },
  opts: { ambiguous?: Map<string, [number, number][]>; blockedVideos?: string[]; groundTruth?: GroundTruth; evaluate?: boolean; onVideo?: OnProgress } = {},
): TspNetTestPass {
  const t0 = Date.now();
  const amb = ambiguousInSnippets(opts.ambiguous, cfg);
  const results: DetectionResults = emptyRecord();
  videos.forEach((v, i) => {
    const p = proposals.get(v.name);
    if (!p) throw new Error(`tspnet: no proposals for test video ${v.name}`);
    results[v.name] = tspnetDetect(model, v, p, classNames, cfg, amb).detections;
    opts.onVideo?.(i + 1, videos.length);
  });
  const evaluation = opts.evaluate !== false ? scoreResults(results, videos, classNames, cfg.tiou, opts) : null;
  return { results, evaluation, seconds: (Date.now() - t0) / 1000 };
}
