/**
 * run.ts: the whole HR-Pro method as one call (what `pstal run` does): stage-1 training, the best
 * checkpoint's test pass and the reliability ranking (RUN/proposals.json), stage-2 training, and the
 * final tables. Each part is skipped when its output is already in RUN and `resume` is set, and each
 * training resumes from its last state, so an interrupted run goes on where it stopped.
 *
 * Resume goes on only with the settings and inputs the run recorded (lib/train/resume.ts; a longer
 * schedule is accepted: stage 1 then goes on and ranks again). A stage `pstal import` wrote is a
 * finished stage: an imported stage 1 gives the ranking (computed here when RUN has none) and
 * stage 2 is trained from it (how the reference's stage 1 is continued with our stage 2); an
 * imported stage 2 is evaluated. A stage 2 trained on another ranking than RUN/proposals.json (stage
 * 1 went on) is stale: it is removed, saying so, and trained again.
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
import { PROPOSALS_FILE, readProposals } from '../../formats/proposals';
import { readRunConfigIfPresent, RunConfig } from '../../formats/run_config';
import { testStage2 } from './evaluate';
import * as path from 'path';
import { lockRunFolder } from '../../util/lock';
import type { RunControl } from '../../train/control';
import { checkResume, computeRecord, fileDigest, runInputs } from '../../train/resume';
import { loadHrPro } from './detect';

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
    inputs: dataset.root ? runInputs(dataset.root, config) : undefined,
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

/** Where each stage of a run folder stands for a resume: imported (finished elsewhere), done, or to train (go on, or start). */
export interface HrProResumePlan {
  stage1: 'imported' | 'done' | 'train';
  stage2: 'imported' | 'done' | 'train';
}

/** The imported stage's origin, for messages. */
const importedFrom = (c: RunConfig): string => String((c.imported as { from?: unknown }).from ?? 'elsewhere');

/** An imported stage must have the dataset's classes and feature width. */
function checkImported(file: string, c: RunConfig, ctx: Stage1Context): void {
  const D = ctx.train[0]?.D;
  if (c.classNames && JSON.stringify(c.classNames) !== JSON.stringify(ctx.classNames))
    throw new Error(`${file}: the imported checkpoint's classes (${c.classNames.join(', ')}) are not the dataset's (${ctx.classNames.join(', ')})`);
  if (D !== undefined && c.featureDim !== D) throw new Error(`${file}: the imported checkpoint takes features of width ${c.featureDim}, the dataset's are ${D} wide`);
}

/**
 * Where the stages of `out` stand before a resume with these configurations. A finished stage whose
 * recorded settings or inputs differ from these is refused here (ResumeMismatchError naming each
 * field); a longer schedule makes it 'train' (it goes on).
 */
export function hrproResumePlan(out: string, ctx: Stage1Context, cfg1: Stage1TrainConfig, cfg2: Stage2TrainConfig): HrProResumePlan {
  const p1 = stage1Paths(out);
  const p2 = stage2Paths(out);
  const proposalsFile = path.join(out, PROPOSALS_FILE);
  const compute = computeRecord(ctx.device);
  const rec1 = readRunConfigIfPresent(p1.config);
  let stage1: HrProResumePlan['stage1'] = 'train';
  if (rec1?.imported && fs.existsSync(p1.best)) {
    checkImported(p1.config, rec1, ctx);
    stage1 = 'imported';
  } else if (fs.existsSync(proposalsFile) && fs.existsSync(p1.best)) {
    stage1 = 'done';
    if (rec1) {
      const c = checkResume('stage 1', p1.config, rec1, { ...rec1, stage1: cfg1, classNames: ctx.classNames, inputs: ctx.inputs, compute }, { length: 'stage1.iterations', free: ['stage1.checkpointEvery'] });
      if (c.accepted.some((d) => d.field === 'stage1.iterations')) stage1 = 'train';
    }
  }
  const rec2 = readRunConfigIfPresent(p2.config);
  let stage2: HrProResumePlan['stage2'] = 'train';
  if (rec2?.imported && fs.existsSync(p2.best)) stage2 = 'imported';
  else if (stage1 !== 'train' && rec2 && fs.existsSync(p2.best) && fs.existsSync(p2.last) && fs.existsSync(proposalsFile)) {
    const inputs = { ...ctx.inputs, proposals: fileDigest(proposalsFile) };
    const c = checkResume('stage 2', p2.config, rec2, { ...rec2, stage2: cfg2, classNames: ctx.classNames, inputs, compute }, { length: 'stage2.epochs' });
    stage2 = c.accepted.some((d) => d.field === 'stage2.epochs') ? 'train' : 'done';
  }
  return { stage1, stage2 };
}

/** Both stages' training configurations of a run: stage 2 takes stage 1's seed and exactIoU unless given. */
export function hrproConfigs(o: RunOptions): { cfg1: Stage1TrainConfig; cfg2: Stage2TrainConfig } {
  const cfg1 = stage1ConfigFrom(o.dataset.config, o.stage1 ?? {});
  const cfg2 = stage2ConfigFrom(o.dataset.config, { seed: cfg1.seed, exactIoU: cfg1.exactIoU, ...(o.stage2 ?? {}) });
  return { cfg1, cfg2 };
}

/**
 * The ranking (RUN/proposals.json) and stage-1 test pass from an imported stage 1: its recorded
 * inference settings, with this run's seed (the ranking's random draws) and exactIoU.
 */
export function rankImportedStage1(ctx: Stage1Context, cfg1: Stage1TrainConfig): ReturnType<typeof finishStage1> {
  const m = loadHrPro(ctx.out, { device: ctx.device });
  try {
    return finishStage1(ctx, { ...m.cfg1, seed: cfg1.seed, exactIoU: cfg1.exactIoU }, m.stage1);
  } finally {
    m.dispose();
  }
}

/** A stage 2 of `out` trained on another ranking than RUN/proposals.json: its files are removed (listed in the log). */
function dropStaleStage2(out: string, proposalsDigest: string, log: (s: string) => void): void {
  const p2 = stage2Paths(out);
  const rec2 = readRunConfigIfPresent(p2.config);
  const was = rec2?.inputs?.proposals;
  if (!rec2 || rec2.imported || typeof was !== 'string' || was === proposalsDigest) return;
  const removed = [p2.last, p2.best, p2.metrics, p2.results, p2.config].filter((f) => fs.existsSync(f));
  for (const f of removed) fs.rmSync(f);
  if (removed.length) log(`stage 2: removed ${removed.map((f) => path.basename(f)).join(', ')}: trained on another stage-1 ranking than ${PROPOSALS_FILE} (${was}, now ${proposalsDigest}); stage 2 starts again`);
}

async function runLocked(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? ((s: string) => console.error(s));
  const ctx = stageContext(o.dataset, o);
  const { cfg1, cfg2 } = hrproConfigs(o);
  const proposalsFile = path.join(o.out, PROPOSALS_FILE);
  const result: RunResult = { interrupted: false, stage1: null, stage2: null };
  const plan: HrProResumePlan = o.resume ? hrproResumePlan(o.out, ctx, cfg1, cfg2) : { stage1: 'train', stage2: 'train' };

  if (plan.stage1 === 'imported') {
    log(`stage 1: imported into ${o.out} (from ${importedFrom(readRunConfigIfPresent(stage1Paths(o.out).config)!)}): a finished stage; the ranking and stage 2 go on from it`);
    if (!fs.existsSync(proposalsFile)) {
      const f = rankImportedStage1(ctx, cfg1);
      log(`stage 1: the imported checkpoint on the test videos\n${f.table}\nranking: ${f.counts.PP} PP, ${f.counts.RP} RP, ${f.counts.NP} NP -> ${f.proposalsFile}`);
    }
  } else if (plan.stage1 === 'train') {
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

  // stage 2 learns from the ranking: its digest is recorded with stage 2 and compared on resume
  const proposalsDigest = fileDigest(proposalsFile);
  const ctx2: Stage2Context = { ...ctx, proposals: readProposals(proposalsFile), resume: o.resume, inputs: { ...ctx.inputs, proposals: proposalsDigest } };
  if (plan.stage2 === 'imported') {
    const rec2 = readRunConfigIfPresent(stage2Paths(o.out).config)!;
    log(`stage 2: imported into ${o.out} (from ${importedFrom(rec2)}): a finished stage, evaluated`);
    const m = loadHrPro(o.out, { device: o.device });
    try {
      const pass = testStage2(m.stage2!, ctx.test, ctx2.proposals, ctx.classNames, { ...m.cfg2, exactIoU: cfg2.exactIoU }, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth });
      const table = formatMapTable(pass.evaluation!);
      log(`stage 2: the imported checkpoint on the test videos\n${table}`);
      return { ...result, stage2: { bestMap: NaN, bestEpoch: 0, table, evaluation: pass.evaluation } };
    } finally {
      m.dispose();
    }
  }
  if (o.resume) dropStaleStage2(o.out, proposalsDigest, log);
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
