/**
 * run.ts: the whole HR-Pro method as one call (what `pstal run` does): stage-1 training, the best
 * checkpoint's test pass and the reliability ranking (RUN/proposals.json), stage-2 training, and the
 * final tables. Each part is skipped when its output is already in RUN and `resume` is set, and each
 * training resumes from its last state, so an interrupted run goes on where it stopped.
 */
import * as fs from 'fs';
import type { Dataset } from '../../data';
import { subsetGroundTruth, formatMapTable } from '../../eval/detection';
import type { EvalResult } from '../../eval/detection';
import { Device } from '../../runtime/backend';
import { trainStage1 } from './train_stage1';
import { finishStage1 } from './pipeline';
import { trainStage2 } from './train_stage2';
import type { Stage1Context, Stage2Context } from './context';
import { Stage1TrainConfig, Stage2TrainConfig, stage1ConfigFrom, stage2ConfigFrom } from './config';
import { loadStage2Weights, stage1Paths, stage2Paths } from './checkpoint';
import { readProposals } from '../../formats/proposals';
import { testStage2 } from './evaluate';
import * as path from 'path';
import { lockRunFolder } from '../../util/lock';
import type { RunControl } from '../../train/control';

export interface RunOptions extends RunControl {
  dataset: Dataset;
  out: string;
  stage1?: Partial<Stage1TrainConfig>;
  stage2?: Partial<Stage2TrainConfig>;
}

export interface RunResult {
  interrupted: boolean;
  stage1: { bestMap: number; table: string } | null;
  stage2: { bestMap: number; bestEpoch: number; table: string; evaluation: EvalResult | null } | null;
}

/** Shared context of both stages: the dataset's videos, the ambiguous list, the reference's gt. */
export function stageContext(dataset: Dataset, o: RunControl & { out: string }): Stage1Context {
  const config = dataset.config;
  return {
    out: o.out,
    classNames: dataset.classNames,
    train: dataset.train,
    test: dataset.test,
    ambiguous: dataset.ambiguous.size ? dataset.ambiguous : undefined,
    blockedVideos: config.blockedVideos,
    testGroundTruth: subsetGroundTruth(dataset.groundTruth, dataset.testSubset, { blockedVideos: config.blockedVideos, file: dataset.gtFile }),
    device: o.device,
    resume: o.resume,
    quiet: o.quiet,
    log: o.log,
    signal: o.signal,
  };
}

export async function runHrPro(o: RunOptions): Promise<RunResult> {
  const lock = lockRunFolder(o.out); // held across both stages and the ranking
  try {
    return await runLocked(o);
  } finally {
    lock.release();
  }
}

async function runLocked(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? ((s: string) => console.error(s));
  const ctx = stageContext(o.dataset, o);
  const cfg1 = stage1ConfigFrom(o.dataset.config, o.stage1 ?? {});
  const proposalsFile = path.join(o.out, 'proposals.json');
  const result: RunResult = { interrupted: false, stage1: null, stage2: null };

  if (!(o.resume && fs.existsSync(proposalsFile) && fs.existsSync(stage1Paths(o.out).best))) {
    log(`stage 1: ${ctx.train.length} training and ${ctx.test.length} test videos; ${cfg1.iterations} iterations of ${cfg1.batchSize} videos`);
    const r1 = await trainStage1(ctx, cfg1);
    if (r1.interrupted) {
      r1.model.dispose();
      return { ...result, interrupted: true };
    }
    const f = finishStage1(ctx, cfg1, r1.model);
    r1.model.dispose();
    log(`stage 1: best checkpoint (iteration ${r1.bestIteration}) on the test videos\n${f.table}\nranking: ${f.counts.PP} PP, ${f.counts.RP} RP, ${f.counts.NP} NP -> ${f.proposalsFile}`);
    result.stage1 = { bestMap: r1.bestMap, table: f.table };
  } else {
    log(`stage 1: done in ${o.out} (proposals.json present); going on to stage 2`);
  }

  const cfg2 = stage2ConfigFrom(o.dataset.config, { seed: cfg1.seed, exactIoU: cfg1.exactIoU, ...(o.stage2 ?? {}) });
  const ctx2: Stage2Context = { ...ctx, proposals: readProposals(proposalsFile), resume: o.resume };
  log(`stage 2: ${cfg2.epochs} epochs of batches of ${cfg2.batchSize} videos, up to ${cfg2.maxProposals} proposals a video`);
  const r2 = await trainStage2(ctx2, cfg2);
  try {
    if (r2.interrupted) return { ...result, interrupted: true };
    // the final evaluation: the best stage-2 checkpoint's test pass (also when an earlier run, resumed here, wrote it)
    loadStage2Weights(r2.model, stage2Paths(o.out).best);
    const pass = testStage2(r2.model, ctx.test, ctx2.proposals, ctx.classNames, cfg2, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth });
    const table = formatMapTable(pass.evaluation!);
    log(`stage 2: best checkpoint (epoch ${r2.bestEpoch}) on the test videos\n${table}`);
    result.stage2 = { bestMap: r2.bestMap, bestEpoch: r2.bestEpoch, table, evaluation: pass.evaluation };
    return result;
  } finally {
    r2.model.dispose();
  }
}
