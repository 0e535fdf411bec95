/**
 * pipeline.ts: what runs after stage-1 training, as the reference's `--mode infer` does it: the
 * best checkpoint's test pass (final stage-1 detections, written as RUN/stage1_results.json) and
 * the reliability ranking over the training videos (SPEC §3), written as RUN/proposals.json:
 *   { "train": {video: {PP, RP, NP}}, "test": {video: {PP}}, "units": {...} }
 * PP (raw candidates) and RP are in seconds, NP in snippets, as the reference writes them.
 */
import * as path from 'path';
import { Rng } from '../../util/rng';
import { writeFileAtomic } from '../../util/fs';
import { stringifyChunks } from '../../util/json';
import { formatMapTable } from '../../eval/detection';
import { Stage1Model } from './stage1';
import { selectSeed } from './pseudo_labels';
import { groupByClass, rankVideo, RankedProposals, Span } from './ranking';
import type { Stage1Context } from './context';
import type { Stage1TrainConfig } from './config';
import { loadStage1Weights, stage1Paths } from './checkpoint';
import { testStage1 } from './evaluate';
import { pointMatrix } from './videos';
import { writeResults } from '../../train/loop';

export interface Stage1Finish {
  table: string;
  proposalsFile: string;
  counts: { PP: number; RP: number; NP: number };
}

/** Best checkpoint -> test detections, then ranking over the training videos -> proposals.json. */
export function finishStage1(ctx: Stage1Context, cfg: Stage1TrainConfig, model: Stage1Model): Stage1Finish {
  const paths = stage1Paths(ctx.out);
  loadStage1Weights(model, paths.best);
  const C = ctx.classNames.length;
  const test = testStage1(model, ctx.test, ctx.classNames, cfg, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth });
  writeResults(paths.results, test.results, 'pstal stage 1');
  const train = testStage1(model, ctx.train, ctx.classNames, cfg, { evaluate: false });
  const rng = new Rng(cfg.seed + 2);
  const trainOut: Record<string, RankedProposals> = {};
  const counts = { PP: 0, RP: 0, NP: 0 };
  for (const v of ctx.train) {
    const s = train.scores.get(v.name)!;
    const seeds = selectSeed(s.bkg, pointMatrix(v, C), C, cfg);
    const r = rankVideo(train.candidates.get(v.name)!, v.points, seeds.bkg, ctx.classNames, rng);
    trainOut[v.name] = r;
    counts.PP += train.candidates.get(v.name)!.length;
    counts.RP += Object.values(r.RP).reduce((n, l) => n + l.filter((x) => x).length, 0);
    counts.NP += r.NP.length;
  }
  const testOut: Record<string, { PP: Record<string, Span[]> }> = {};
  for (const v of ctx.test) testOut[v.name] = { PP: groupByClass(test.candidates.get(v.name)!, ctx.classNames) };
  const proposalsFile = path.join(ctx.out, 'proposals.json');
  writeFileAtomic(proposalsFile, stringifyChunks({ units: { PP: 'seconds', RP: 'seconds', NP: 'snippets' }, train: trainOut, test: testOut }, 3));
  return { table: formatMapTable(test.evaluation!), proposalsFile, counts };
}
