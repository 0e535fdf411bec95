/**
 * pipeline.ts: what runs after stage-1 training, as the reference's `--mode infer` does it: the
 * best checkpoint's test pass (final stage-1 detections, written as RUN/stage1_results.json) and
 * the reliability ranking over the training videos (SPEC §3), written as RUN/proposals.json
 * (lib/formats/proposals.ts).
 */
import * as path from 'path';
import { Rng } from '../../util/rng';
import { ProgressBar, progressCallback } from '../../util/progress';
import { formatMapTable } from '../../eval/detection';
import { ComposedProjections, Stage1Model } from './stage1';
import { noGrad } from '../../tensor/tensor';
import { selectSeed } from './pseudo_labels';
import { groupByClass, rankVideo } from './ranking';
import type { Stage1Context } from './context';
import type { Stage1TrainConfig } from './config';
import { loadStage1Weights, stage1Paths } from './checkpoint';
import { testStage1 } from './evaluate';
import { pointMatrix } from './videos';
import { writeResults } from '../../formats/results';
import { PROPOSALS_FILE, ProposalsWriter, RankedProposals } from '../../formats/proposals';

export interface Stage1Finish {
  table: string;
  proposalsFile: string;
  counts: { PP: number; RP: number; NP: number };
}

/** Training videos scored and ranked at a time: their candidates are written and dropped (ActivityNet 1.3: ~25 M). */
const RANKING_BATCH = 64;

/**
 * Best checkpoint -> test detections, then ranking over the training videos -> proposals.json.
 * The file is streamed (AtomicFileWriter) video by video in the layout and bytes JSON.stringify
 * would give, so memory does not grow with the dataset; it appears only when complete.
 */
export function finishStage1(ctx: Stage1Context, cfg: Stage1TrainConfig, model: Stage1Model): Stage1Finish {
  const paths = stage1Paths(ctx.out);
  loadStage1Weights(model, paths.best);
  const C = ctx.classNames.length;
  // composed once for the test pass and every ranking batch (D^3 a branch each time otherwise)
  const projections = noGrad(() => model.composeProjections());
  try {
    return testAndRank(ctx, cfg, model, projections, paths.results, C);
  } finally {
    projections.dispose();
  }
}

/** finishStage1 with the projections composed: the test pass, then the ranking of the training videos. */
function testAndRank(
  ctx: Stage1Context,
  cfg: Stage1TrainConfig,
  model: Stage1Model,
  projections: ComposedProjections,
  resultsFile: string,
  C: number,
): Stage1Finish {
  const test = testStage1(model, ctx.test, ctx.classNames, cfg, {
    ambiguous: ctx.ambiguous,
    blockedVideos: ctx.blockedVideos,
    groundTruth: ctx.testGroundTruth,
    projections,
    onVideo: progressCallback('stage 1 test', { quiet: ctx.quiet, unit: 'videos' }),
  });
  writeResults(resultsFile, test.results, 'pstal stage 1');
  const table = formatMapTable(test.evaluation!);
  const rng = new Rng(cfg.seed + 2);
  const counts = { PP: 0, RP: 0, NP: 0 };
  const proposalsFile = path.join(ctx.out, PROPOSALS_FILE);
  const w = new ProposalsWriter(proposalsFile);
  const bar = new ProgressBar('ranking', ctx.train.length, { quiet: ctx.quiet, unit: 'videos' });
  try {
    for (let b = 0; b < ctx.train.length; b += RANKING_BATCH) {
      const videos = ctx.train.slice(b, b + RANKING_BATCH);
      const pass = testStage1(model, videos, ctx.classNames, cfg, { evaluate: false, projections });
      const ranked: [string, RankedProposals][] = [];
      for (const v of videos) {
        const candidates = pass.candidates.get(v.name)!;
        const seeds = selectSeed(pass.scores.get(v.name)!.bkg, pointMatrix(v, C), C, cfg);
        const r = rankVideo(candidates, v.points, seeds.bkg, ctx.classNames, rng);
        counts.PP += candidates.length;
        counts.RP += Object.values(r.RP).reduce((n, l) => n + l.filter((x) => x).length, 0);
        counts.NP += r.NP.length;
        ranked.push([v.name, r]);
      }
      w.train(ranked);
      bar.update(b + videos.length, { PP: counts.PP });
    }
    for (const v of ctx.test) w.test(v.name, groupByClass(test.candidates.get(v.name)!, ctx.classNames));
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
  return { table, proposalsFile, counts };
}
