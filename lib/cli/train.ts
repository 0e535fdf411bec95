/**
 * `pstal train --stage 1|2 --data DIR --config thumos14 --out RUN ...`: one HR-Pro stage.
 * Stage 1 (SPEC §2): progress bar, the reference's mAP table at each test, then the best
 * checkpoint's test pass and the reliability ranking (SPEC §3) written to RUN/proposals.json.
 * Stage 2 (SPEC §4): continues from RUN/proposals.json. Ctrl-C stops after the current step with the
 * state saved; --resume goes on. `pstal run` does both stages in one go.
 */
import { parseArgs, CliError, OptionSpec, Parsed, PRECISION_OPTION, applyPrecision } from './args';
import { loadConfig, loadDataset, Dataset, DatasetConfig } from '../data';
import { trainStage1 } from '../models/hrpro/train_stage1';
import { STAGE1_TRAIN_DEFAULTS, Stage1TrainConfig } from '../models/hrpro/config';
import { finishStage1 } from '../models/hrpro/pipeline';
import { stage1ConfigFrom } from '../models/hrpro/config';
import { trainStage2 } from '../models/hrpro/train_stage2';
import { STAGE2_TRAIN_DEFAULTS, Stage2TrainConfig } from '../models/hrpro/config';
import { readProposalsFile } from '../models/hrpro/proposals';
import { stageContext } from '../models/hrpro/run';
import { stage2ConfigFrom } from '../models/hrpro/config';
import { formatMapTable } from '../eval/detection';
import { setNumThreads } from '../runtime/native';
import { checkDevice, Device } from '../runtime/backend';
import * as path from 'path';
import * as fs from 'fs';
import { checkDataset, dataFeatureWidth, formatProblems } from '../data/check';
import { writeFileAtomic } from '../util/fs';
import { mainTspNet } from './tspnet';
import { TSPNET_DEFAULTS } from '../models/tspnet/config';
import { lockRunFolder } from '../util/lock';

/** Options every training command takes. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  data: { type: 'string', describe: 'dataset folder in the standard layout (gt_full.json, splits, point_labels/, features/)', required: true },
  config: { type: 'string', describe: 'dataset config: thumos14, gtea, beoid, activitynet13, or a YAML file', default: 'thumos14' },
  out: { type: 'string', describe: 'run folder (config, metrics, checkpoints, results)', required: true },
  dim: { type: 'number', describe: "feature width D (default: the data's, from the first training video's .npy header); a value that disagrees with the data is an error naming the file" },
  seed: { type: 'number', describe: 'random seed (initialisation, video order, dropout, sampling)', default: 0 },
  device: { type: 'string', describe: "'cpu' or 'cuda'", default: 'cpu' },
  threads: { type: 'number', describe: 'CPU threads (default: all cores, or PSTAL_NUM_THREADS)' },
  precision: PRECISION_OPTION,
  'exact-iou': { type: 'boolean', describe: 'soft-NMS with exact IoU instead of the reference\'s "+1" lengths' },
  resume: { type: 'boolean', describe: 'continue from the run folder\'s last saved state' },
  quiet: { type: 'boolean', describe: 'no progress bar' },
  'no-check': { type: 'boolean', describe: 'skip the dataset checks of `pstal check` before training (the loader still skips what it cannot use, with warnings)' },
};

export const STAGE1_OPTIONS: Record<string, OptionSpec> = {
  iterations: { type: 'number', describe: `stage-1 training iterations (${STAGE1_TRAIN_DEFAULTS.iterations})` },
  'test-every': { type: 'number', describe: `stage 1: test every N iterations (${STAGE1_TRAIN_DEFAULTS.testEvery})` },
  selection: { type: 'string', describe: "stage-1 model selection: 'test' (best test mAP, as the references) or 'holdout' (held-out training videos)", default: 'test' },
  'holdout-fraction': { type: 'number', describe: 'fraction of training videos held out with --selection holdout', default: 0.1 },
  'prototype-reshape': { type: 'boolean', describe: "build prototype tokens with the reference's reshape (parity runs)" },
  'checkpoint-every': { type: 'number', describe: 'stage 1: also save the training state every N iterations (default: at each test)', default: 0 },
};

export const STAGE2_OPTIONS: Record<string, OptionSpec> = {
  epochs: { type: 'number', describe: `stage-2 epochs (${STAGE2_TRAIN_DEFAULTS.epochs})` },
  'max-proposals': { type: 'number', describe: `stage 2: proposals a training video (${STAGE2_TRAIN_DEFAULTS.maxProposals})` },
};

/** Options of `pstal train --method tspnet` only (it also takes the common ones and the ones below). */
export const TSPNET_OPTIONS: Record<string, OptionSpec> = {
  base: { type: 'string', describe: 'tspnet: an HR-Pro run folder whose best checkpoints give the base proposals' },
  'base-stage': { type: 'number', describe: "tspnet: the base run's stage: 1 (raw stage-1 candidates) or 2 (stage-2 detections)", default: 1 },
  'proposals-train': { type: 'string', describe: 'tspnet: base proposals of the training subset (ActivityNet JSON, seconds) instead of --base' },
  'proposals-test': { type: 'string', describe: 'tspnet: base proposals of the test subset (ActivityNet JSON, seconds)' },
  'update-every': { type: 'number', describe: `tspnet: saliency point update every N iterations (${TSPNET_DEFAULTS.updateEvery}; 0: never)` },
  'reference-point-update': { type: 'boolean', describe: "tspnet: the reference's point update (offset added to the original point; parity runs)" },
  'keep-duplicates': { type: 'boolean', describe: 'tspnet: keep a segment listed once per class as several proposals (the reference; parity runs)' },
};

export const TRAIN_OPTIONS: Record<string, OptionSpec> = {
  method: { type: 'string', describe: "'hrpro' (one stage, --stage) or 'tspnet' (the plug-in on a base's proposals: --base or --proposals-train/-test)", default: 'hrpro' },
  stage: { type: 'number', describe: 'which HR-Pro stage to train: 1, or 2 (from RUN/proposals.json)', default: 1 },
  ...COMMON_OPTIONS,
  'batch-size': { type: 'number', describe: `videos per step (stage 1: ${STAGE1_TRAIN_DEFAULTS.batchSize}, stage 2: ${STAGE2_TRAIN_DEFAULTS.batchSize})` },
  lr: { type: 'number', describe: `Adam learning rate (stage 1: ${STAGE1_TRAIN_DEFAULTS.lr}, stage 2: ${STAGE2_TRAIN_DEFAULTS.lr})` },
  ...STAGE1_OPTIONS,
  ...STAGE2_OPTIONS,
  // the same options for tspnet, with its defaults in the help
  iterations: { type: 'number', describe: `training iterations (stage 1: ${STAGE1_TRAIN_DEFAULTS.iterations}, tspnet: ${TSPNET_DEFAULTS.iterations})` },
  'test-every': { type: 'number', describe: `test every N iterations (stage 1: ${STAGE1_TRAIN_DEFAULTS.testEvery}, tspnet: ${TSPNET_DEFAULTS.testEvery})` },
  'max-proposals': { type: 'number', describe: `proposals a training video, drawn at random beyond (stage 2: ${STAGE2_TRAIN_DEFAULTS.maxProposals}, tspnet: ${TSPNET_DEFAULTS.maxProposals})` },
  'no-ranking': { type: 'boolean', describe: 'stage 1: skip the final inference and reliability ranking' },
  ...TSPNET_OPTIONS,
};

const num = (a: Parsed, k: string): number | undefined => (a[k] !== undefined ? (a[k] as number) : undefined);
const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Numeric options of the training commands and what they must be (a usage error names the option otherwise). */
const NUMERIC_RULES: Record<string, 'posInt' | 'nonNegInt' | 'int' | 'positive' | 'fraction'> = {
  iterations: 'posInt', 'test-every': 'posInt', 'batch-size': 'posInt', 'batch-size2': 'posInt', epochs: 'posInt',
  'max-proposals': 'posInt', threads: 'posInt', 'checkpoint-every': 'nonNegInt', seed: 'int', lr: 'positive', lr2: 'positive',
  'holdout-fraction': 'fraction', dim: 'posInt', 'update-every': 'nonNegInt',
  // pstal run --method hrpro+tspnet
  'tspnet-iterations': 'posInt', 'tspnet-test-every': 'posInt', 'tspnet-batch-size': 'posInt', 'tspnet-max-proposals': 'posInt', 'tspnet-lr': 'positive',
};

export function checkNumericOptions(a: Parsed): void {
  for (const [k, rule] of Object.entries(NUMERIC_RULES)) {
    const v = a[k];
    if (v === undefined) continue;
    const n = v as number;
    const ok =
      rule === 'posInt' ? Number.isSafeInteger(n) && n >= 1
      : rule === 'nonNegInt' ? Number.isSafeInteger(n) && n >= 0
      : rule === 'int' ? Number.isSafeInteger(n)
      : rule === 'positive' ? Number.isFinite(n) && n > 0
      : Number.isFinite(n) && n > 0 && n < 1;
    const want = { posInt: 'a positive integer', nonNegInt: 'a non-negative integer', int: 'an integer', positive: 'a positive number', fraction: 'a number between 0 and 1 (exclusive)' }[rule];
    if (!ok) throw new CliError(`--${k} must be ${want}, received ${v}`);
  }
}

/** The parts of the parsed options both training commands need: device, dataset, stage configs. */
export function setup(a: Parsed, lr1Key = 'lr', lr2Key = 'lr', batch1Key = 'batch-size', batch2Key = 'batch-size') {
  checkNumericOptions(a);
  if (a.selection !== undefined && a.selection !== 'test' && a.selection !== 'holdout')
    throw new CliError(`--selection must be 'test' or 'holdout', received '${a.selection}'`);
  if (a.threads !== undefined) setNumThreads(a.threads as number);
  const device: Device = checkDevice(a.device);
  applyPrecision(a.precision, device);
  const data = a.data as string;
  const featureDim = resolveDim(data, a.dim as number | undefined);
  // one writer a run folder: refused before any work when another process trains in it (held until exit)
  if (a.out !== undefined) lockRunFolder(a.out as string);
  const config = loadConfig(a.config as string, { featureDim });
  if (!a['no-check']) preflight(data, config, a.dim as number | undefined);
  const dataset: Dataset = loadDataset(data, config, { onWarning: (m) => console.error(`warning: ${m}`) });
  if (a.out !== undefined) recordDataset(a.out as string, data, a.config as string, featureDim);
  const stage1: Partial<Stage1TrainConfig> = defined({
    iterations: num(a, 'iterations'),
    testEvery: num(a, 'test-every'),
    batchSize: num(a, batch1Key),
    lr: num(a, lr1Key),
    seed: a.seed as number,
    selection: a.selection as 'test' | 'holdout' | undefined,
    holdoutFraction: num(a, 'holdout-fraction'),
    exactIoU: Boolean(a['exact-iou']),
    checkpointEvery: num(a, 'checkpoint-every'),
  });
  if (a['prototype-reshape']) stage1.model = { prototypeReshape: true };
  const stage2: Partial<Stage2TrainConfig> = defined({
    epochs: num(a, 'epochs'),
    batchSize: num(a, batch2Key),
    lr: num(a, lr2Key),
    maxProposals: num(a, 'max-proposals'),
    seed: a.seed as number,
    exactIoU: Boolean(a['exact-iou']),
  });
  return { device, config, dataset, stage1, stage2 };
}

/**
 * --dim: the data's feature width (the first training video's .npy header) when not given; an
 * explicit value that disagrees with that file is an error naming it.
 */
export function resolveDim(data: string, explicit: number | undefined): number {
  if (explicit !== undefined && !(Number.isInteger(explicit) && explicit >= 1)) throw new CliError(`--dim must be a positive integer, received ${explicit}`);
  if (!fs.existsSync(data)) throw new Error(`dataset folder not found: ${data}`);
  const found = dataFeatureWidth(data);
  if (!found) {
    if (explicit !== undefined) return explicit;
    throw new Error(`${path.join(data, 'features', 'train')}: no feature file of a video of split_train.txt, so the feature width cannot be read (run \`pstal check --data ${data}\`)`);
  }
  if (explicit !== undefined && explicit !== found.dim)
    throw new Error(`${found.file}: feature width ${found.dim} does not match --dim ${explicit} (leave --dim out to use the data's width)`);
  return found.dim;
}

/**
 * The checks of `pstal check` before any feature is loaded: warnings are printed, errors stop the
 * command with the same messages as `pstal check`.
 */
export function preflight(data: string, config: DatasetConfig, dim: number | undefined): void {
  const r = checkDataset(data, config, { dim });
  const warnings = r.problems.filter((p) => p.severity === 'warning');
  if (warnings.length) console.error(formatProblems(warnings, 5).join('\n'));
  if (r.errors > 0) {
    const lines = formatProblems(r.problems.filter((p) => p.severity === 'error'), 20);
    throw new Error(`the dataset ${data} has ${r.errors} error(s) (\`pstal check --data ${data}\` lists every problem; --no-check skips these checks):\n${lines.join('\n')}`);
  }
}

/** RUN/dataset.json: where the run's data came from, for `pstal report` (written by the CLI only). */
function recordDataset(out: string, data: string, config: string, featureDim: number): void {
  try {
    writeFileAtomic(path.join(out, 'dataset.json'), JSON.stringify({ data: path.resolve(data), config, featureDim }, null, 2) + '\n');
  } catch {
    // a run folder that cannot be written fails later with a clearer message
  }
}

/** Ctrl-C: stop after the current step (state saved); a second Ctrl-C quits at once. */
export function withSigint<T>(run: (signal: { stop: boolean }) => Promise<T>): Promise<T> {
  const signal = { stop: false };
  const onSigint = (): void => {
    if (signal.stop) process.exit(130);
    signal.stop = true;
    console.error('\nstopping after this step (Ctrl-C again to quit at once)...');
  };
  process.on('SIGINT', onSigint);
  return run(signal).finally(() => process.off('SIGINT', onSigint));
}

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('train', argv, TRAIN_OPTIONS);
  if (!a) return 0;
  if (a.method === 'tspnet') return mainTspNet(a);
  if (a.method !== 'hrpro') throw new CliError(`--method must be 'hrpro' or 'tspnet', received '${a.method}'`);
  for (const k of Object.keys(TSPNET_OPTIONS)) if (a[k] !== undefined && a[k] !== TSPNET_OPTIONS[k].default) throw new CliError(`--${k} is a --method tspnet option`);
  if (a.stage !== 1 && a.stage !== 2) throw new CliError(`--stage must be 1 or 2, received ${a.stage}`);
  const { device, dataset, stage1, stage2 } = setup(a);
  const out = a.out as string;
  return withSigint(async (signal) => {
    const ctx = stageContext(dataset, { out, device, resume: Boolean(a.resume), quiet: Boolean(a.quiet), signal });
    if (a.stage === 1) {
      const cfg = stage1ConfigFrom(dataset.config, stage1);
      console.error(
        `stage 1: ${dataset.train.length} training and ${dataset.test.length} test videos, D = ${dataset.train[0]?.D}, ` +
          `${dataset.classNames.length} classes; ${cfg.iterations} iterations of ${cfg.batchSize} videos, test every ${cfg.testEvery}`,
      );
      const r = await trainStage1(ctx, cfg);
      try {
        if (r.interrupted) return 130;
        console.error(`stage 1: best average mAP(${cfg.tiou[0]}:${cfg.tiou[cfg.tiou.length - 1]}) ${(100 * r.bestMap).toFixed(2)} at iteration ${r.bestIteration}`);
        if (!a['no-ranking']) {
          const f = finishStage1(ctx, cfg, r.model);
          console.error(`stage 1: best checkpoint's test table\n${f.table}\nproposals for stage 2: ${f.proposalsFile} (${f.counts.PP} PP, ${f.counts.RP} RP, ${f.counts.NP} NP)`);
        }
        return 0;
      } finally {
        r.model.dispose();
      }
    }
    const cfg = stage2ConfigFrom(dataset.config, stage2);
    const proposals = readProposalsFile(path.join(out, 'proposals.json'));
    console.error(`stage 2: ${dataset.train.length} training and ${dataset.test.length} test videos; ${cfg.epochs} epochs of batches of ${cfg.batchSize} videos`);
    const r = await trainStage2({ ...ctx, proposals }, cfg);
    try {
      if (r.interrupted) return 130;
      console.error(`stage 2: best average mAP(${cfg.tiou[0]}:${cfg.tiou[cfg.tiou.length - 1]}) ${(100 * r.bestMap).toFixed(2)} at epoch ${r.bestEpoch}` + (r.best ? `\n${formatMapTable(r.best)}` : ''));
      return 0;
    } finally {
      r.model.dispose();
    }
  });
}
