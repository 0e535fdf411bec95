/**
 * evaluate_run.ts: a run's best checkpoint (trained, or imported by importHrPro) evaluated on a
 * dataset's test split, by the very test passes training uses (testStage1, testStage2): what
 * `pstal test` prints. Stage 2 scores stage-1 proposals: the run's proposals.json when present
 * (the test PP its stage 1 wrote), else the test PP of the run's stage-1 checkpoint, grouped by
 * class as finishStage1 writes them. The evaluation uses the dataset config's tIoUs, blocked
 * videos and ambiguous segments; the inference settings are the run's (config.json,
 * stage2_config.json).
 */
import * as fs from 'fs';
import type { OnProgress } from '../../util/progress';
import * as path from 'path';
import type { Dataset } from '../../data';
import type { DetectionResults, EvalResult } from '../../eval/detection';
import { formatMapTable } from '../../eval/detection';
import { Rng } from '../../util/rng';
import { checkDevice, Device } from '../../runtime/backend';
import { loadHrPro, HrProModel } from './detect';
import { stageContext } from './run';
import { stage1Paths } from './checkpoint';
import { testStage1 } from './evaluate';
import { STAGE2_TRAIN_DEFAULTS, Stage2TrainConfig } from './config';
import { ProposalsFile, packByClass, readProposals } from '../../formats/proposals';
import { stage2Paths, loadStage2Weights } from './checkpoint';
import { testStage2 } from './evaluate';
import { Stage2Model } from './stage2';
import { groupByClass } from './ranking';
import { readRunConfig } from '../../formats/run_config';
import { emptyRecord } from '../../formats/text';

export interface EvaluateRunOptions {
  /** the run folder */
  run: string;
  /** the dataset whose test split is scored (loadDataset; the train split is not needed) */
  dataset: Dataset;
  /** 1 or 2 (default: 2 when the run has a stage-2 checkpoint) */
  stage?: 1 | 2;
  device?: Device | string;
  /** progress messages (default: none) */
  log?: (text: string) => void;
  /** called after each test video of the scored pass (a progress bar: lib/util/progress.ts) */
  onVideo?: OnProgress;
}

export interface EvaluateRunResult {
  stage: 1 | 2;
  evaluation: EvalResult;
  /** the test detections (ActivityNet results: video -> [{label, score, segment}]) */
  results: DetectionResults;
  /** the mAP table as the other commands print it */
  table: string;
  /** stage 2: where the test proposals came from */
  proposals?: 'proposals.json' | 'stage-1 checkpoint';
  seconds: number;
}

/** A run's stage-2 model alone (a run with proposals.json but no stage-1 checkpoint). */
function loadStage2Only(run: string, device: Device): { model: Stage2Model; cfg: Stage2TrainConfig; featureDim: number; classNames?: string[] } {
  const p2 = stage2Paths(run);
  const c2 = readRunConfig(p2.config);
  const featureDim = c2.featureDim as number;
  if (!(featureDim > 0)) throw new Error(`${p2.config}: missing featureDim`);
  const cfg = { ...STAGE2_TRAIN_DEFAULTS, ...((c2.stage2 ?? {}) as Partial<Stage2TrainConfig>) };
  const model = new Stage2Model({ ...cfg.model, featureDim, device }, new Rng(0));
  try {
    loadStage2Weights(model, p2.best);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return { model, cfg, featureDim, classNames: c2.classNames as string[] | undefined };
}

/** Evaluates a run's best stage-1 or stage-2 checkpoint on the dataset's test split. */
export function evaluateRun(o: EvaluateRunOptions): EvaluateRunResult {
  const t0 = Date.now();
  const log = o.log ?? (() => undefined);
  const device = checkDevice(o.device ?? 'cpu');
  const p1 = stage1Paths(o.run);
  const p2 = stage2Paths(o.run);
  const proposalsFile = path.join(o.run, 'proposals.json');
  const has1 = fs.existsSync(p1.best);
  const has2 = fs.existsSync(p2.best);
  const stage = o.stage ?? (has2 ? 2 : 1);
  if (stage !== 1 && stage !== 2) throw new Error(`evaluateRun: stage must be 1 or 2, received ${stage}`);
  if (!has1 && (stage === 1 || !fs.existsSync(proposalsFile)))
    throw new Error(`${o.run}: no stage-1 checkpoint (${path.basename(p1.best)})${stage === 2 ? ' and no proposals.json' : ''}; train or import stage 1 first`);
  if (stage === 2 && !has2) throw new Error(`${o.run}: no stage-2 checkpoint (${path.basename(p2.best)}); train or import stage 2 first`);

  const ds = o.dataset;
  if (!ds.test.length) throw new Error(`${ds.root}: no test videos to evaluate`);
  const ctx = stageContext(ds, { out: o.run, device });
  const tiou = ds.config.tiou;
  const evalOpts = { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth };

  let hr: HrProModel | null = null;
  let only2: ReturnType<typeof loadStage2Only> | null = null;
  try {
    if (has1) hr = loadHrPro(o.run, { device });
    else only2 = loadStage2Only(o.run, device);
    const runClasses = hr?.classNames ?? only2?.classNames;
    const featureDim = hr?.featureDim ?? only2!.featureDim;
    const configFile = has1 ? p1.config : p2.config;
    if (runClasses && runClasses.join('\n') !== ds.classNames.join('\n'))
      throw new Error(
        `${configFile}: the run's ${runClasses.length} classes (${runClasses.slice(0, 3).join(', ')}, ...) are not the dataset's ` +
          `${ds.classNames.length} (${ds.classNames.slice(0, 3).join(', ')}, ...) in the same order; evaluate with the config the run was made with (--config)`,
      );
    const wrong = ds.test.find((v) => v.D !== featureDim);
    if (wrong) throw new Error(`${configFile}: the run's features are ${featureDim} wide, but test video ${wrong.name} has D = ${wrong.D}`);

    if (stage === 1) {
      const cfg1 = { ...hr!.cfg1, tiou };
      log(`stage 1: ${ds.test.length} test videos`);
      const pass = testStage1(hr!.stage1, ctx.test, ctx.classNames, cfg1, { ...evalOpts, onVideo: o.onVideo });
      return { stage, evaluation: pass.evaluation!, results: pass.results, table: formatMapTable(pass.evaluation!), seconds: (Date.now() - t0) / 1000 };
    }

    let proposals: ProposalsFile;
    let source: EvaluateRunResult['proposals'];
    if (fs.existsSync(proposalsFile)) {
      proposals = readProposals(proposalsFile);
      source = 'proposals.json';
      const missing = ds.test.filter((v) => !proposals.test[v.name]).length;
      if (missing) log(`stage 2: ${missing} of ${ds.test.length} test videos have no proposals in ${proposalsFile}; they get no detections`);
    } else {
      // the test PP of the stage-1 checkpoint, as finishStage1 writes them into proposals.json
      log(`stage 2: no ${proposalsFile}; stage-1 proposals of the ${ds.test.length} test videos from ${p1.best}`);
      const pass1 = testStage1(hr!.stage1, ctx.test, ctx.classNames, { ...hr!.cfg1, tiou }, { evaluate: false });
      const test: ProposalsFile['test'] = emptyRecord();
      for (const v of ctx.test) test[v.name] = { PP: packByClass(groupByClass(pass1.candidates.get(v.name)!, ctx.classNames)) };
      proposals = { train: emptyRecord(), test };
      source = 'stage-1 checkpoint';
    }
    const model2 = hr?.stage2 ?? only2!.model;
    const cfg2 = { ...(hr?.cfg2 ?? only2!.cfg), tiou };
    log(`stage 2: ${ds.test.length} test videos, proposals from ${source === 'proposals.json' ? proposalsFile : 'the stage-1 checkpoint'}`);
    const pass = testStage2(model2, ctx.test, proposals, ctx.classNames, cfg2, { ...evalOpts, onVideo: o.onVideo });
    return { stage, evaluation: pass.evaluation!, results: pass.results, table: formatMapTable(pass.evaluation!), proposals: source, seconds: (Date.now() - t0) / 1000 };
  } finally {
    hr?.dispose();
    only2?.model.dispose();
  }
}
