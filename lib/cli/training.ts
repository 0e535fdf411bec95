/**
 * training.ts: what `pstal run`, `pstal train` and `pstal train --method tspnet` share: the
 * training options, their checks, and the set-up before any training (compute options, the feature
 * width, the run-folder lock, the dataset checks and the loading of the data, parsed once).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CliError, OptionSpec, Parsed } from './args';
import { SHARED, applyComputeOptions } from './options';
import { loadConfig, loadDataset, readDatasetFiles, Dataset, DatasetConfig, DatasetFiles } from '../data';
import { checkDataset, dataFeatureWidth, formatProblems, StageBatch } from '../data/check';
import { STAGE1_TRAIN_DEFAULTS, Stage1TrainConfig, STAGE2_TRAIN_DEFAULTS, Stage2TrainConfig } from '../models/hrpro/config';
import type { Device } from '../runtime/backend';
import { readDatasetRecord, writeDatasetRecord, DATASET_RECORD_FILE, RunInputs } from '../formats/run_config';
import { lockRunFolder } from '../util/lock';
import { checkFreshStart, removeStages, TrainingScope } from '../models/run_folder';
import { checkResume, runInputs } from '../train/resume';
import { LimitName, overLimit, stage1BatchProblem } from '../util/limits';

/** Options every training command takes. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  data: SHARED.data,
  config: SHARED.config,
  out: { type: 'string', describe: 'run folder (config, metrics, checkpoints, results)', required: true },
  dim: SHARED.dim,
  seed: { type: 'number', describe: 'random seed (initialisation, video order, dropout, sampling)', default: 0 },
  device: SHARED.device,
  threads: SHARED.threads,
  precision: SHARED.precision,
  'exact-iou': { type: 'boolean', describe: 'soft-NMS with exact IoU instead of the reference\'s "+1" lengths' },
  resume: { type: 'boolean', describe: 'continue from the run folder\'s last saved state (the settings and data must be those it recorded; more iterations/epochs are accepted)' },
  force: { type: 'boolean', describe: 'start afresh in a run folder that holds a trained or imported stage, removing it and what was derived from it (refused without)' },
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

const num = (a: Parsed, k: string): number | undefined => (a[k] !== undefined ? (a[k] as number) : undefined);
const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Numeric options of the training commands, what they must be and their bound in lib/util/limits.ts (a usage error names the option otherwise). */
const NUMERIC_RULES: Record<string, ['posInt' | 'nonNegInt' | 'int' | 'positive' | 'fraction', LimitName?]> = {
  iterations: ['posInt', 'iterations'], 'test-every': ['posInt'], 'batch-size': ['posInt', 'batchSize'], 'batch-size2': ['posInt', 'batchSize'],
  epochs: ['posInt', 'epochs'], 'max-proposals': ['posInt', 'maxProposals'], threads: ['posInt', 'threads'], 'checkpoint-every': ['nonNegInt'],
  seed: ['int'], lr: ['positive'], lr2: ['positive'], 'holdout-fraction': ['fraction'], dim: ['posInt', 'featureDim'], 'update-every': ['nonNegInt'],
  // pstal run --method hrpro+tspnet
  'tspnet-iterations': ['posInt', 'iterations'], 'tspnet-test-every': ['posInt'], 'tspnet-batch-size': ['posInt', 'batchSize'],
  'tspnet-max-proposals': ['posInt', 'maxProposals'], 'tspnet-lr': ['positive'],
};

export function checkNumericOptions(a: Parsed): void {
  for (const [k, [rule, limit]] of Object.entries(NUMERIC_RULES)) {
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
    const over = limit ? overLimit(limit, n) : null;
    if (over) throw new CliError(`--${k} must be ${over}, received ${v}`);
  }
}

/**
 * What the training commands need from their options: the device, the config and the dataset.
 * `scope`: what the command trains in --out. Without --resume, a folder that holds it is refused
 * (naming what is there) unless --force, which removes it and what was derived from it once the
 * data passed its checks; with --resume, the data and config must be the ones the run recorded
 * (checked before the features are read; the training loop checks the rest).
 */
export function setup(a: Parsed, scope?: TrainingScope): { device: Device; config: DatasetConfig; dataset: Dataset } {
  checkNumericOptions(a);
  if (a.selection !== undefined && a.selection !== 'test' && a.selection !== 'holdout')
    throw new CliError(`--selection must be 'test' or 'holdout', received '${a.selection}'`);
  if (a.force && a.resume) throw new CliError('--force starts the run folder afresh; it does not go with --resume');
  const { device } = applyComputeOptions(a);
  const data = a.data as string;
  const featureDim = resolveDim(data, a.dim as number | undefined);
  const out = a.out as string | undefined;
  // one writer a run folder: refused before any work when another process trains in it (held until exit)
  const lock = out !== undefined ? lockRunFolder(out) : null;
  if (lock?.takenOver) console.error(`warning: ${lock.takenOver}`);
  const stale = out !== undefined && scope && !a.resume ? checkFreshStart(out, scope, Boolean(a.force)) : [];
  const config = loadConfig(a.config as string, { featureDim });
  const batch = stage1Batch(a, config);
  // the checks parse the annotation files once and hand them to the loader (and their digests to the run's record)
  const files = a['no-check'] ? readDatasetFiles(data) : preflight(data, config, a.dim as number | undefined, batch);
  const inputs = out !== undefined ? runInputs(data, config) : undefined;
  if (out !== undefined && a.resume) checkRecordedData(out, featureDim, inputs!);
  const dataset: Dataset = loadDataset(data, config, { files, onWarning: (m) => console.error(`warning: ${m}`) });
  // the checks compared the batch with the training videos; without them, the loaded split does
  const tooLarge = a['no-check'] && batch ? stage1BatchProblem(batch.value, dataset.train.length) : null;
  if (tooLarge) throw new Error(`${batch!.file}${batch!.field ? `: field "${batch!.field}"` : ''}: ${tooLarge}`);
  if (stale.length) {
    const removed = removeStages(stale);
    console.error(`--force: removed ${stale.map((h) => h.what).join('; ')}: ${removed.join(', ')}`);
  }
  if (out !== undefined) recordDataset(out, data, a.config as string, featureDim, inputs);
  return { device, config, dataset };
}

/**
 * --resume of a folder holding a checkpoint: the data folder's and the dataset config's digests
 * and the feature width must be the ones RUN/dataset.json recorded (a moved folder is accepted).
 */
function checkRecordedData(out: string, featureDim: number, inputs: RunInputs): void {
  if (!fs.existsSync(out) || !fs.readdirSync(out).some((n) => n.endsWith('.safetensors'))) return;
  const r = readDatasetRecord(out);
  if (!r?.inputs) return; // a run of an older version, or an imported one: the training loop compares what its config recorded
  checkResume('data', path.join(out, DATASET_RECORD_FILE), { featureDim: r.featureDim, inputs: r.inputs }, { featureDim, inputs });
}

/**
 * Stage 1's videos a batch and where it comes from (--batch-size, else the config's
 * stage1.batchSize), when the command trains stage 1: checked against the training videos before
 * any feature is read (lib/util/limits.ts, stage1BatchProblem).
 */
function stage1Batch(a: Parsed, config: DatasetConfig): StageBatch | undefined {
  const trainsStage1 = a.method === 'hrpro+tspnet' || (a.method === 'hrpro' && (a.stage === undefined || a.stage === 1));
  if (!trainsStage1) return undefined;
  if (a['batch-size'] !== undefined) return { value: a['batch-size'] as number, file: '--batch-size' };
  return { value: config.stage1.batchSize, file: config.file ?? `config ${config.name}`, field: 'stage1.batchSize' };
}

/** A stage's learning rate and batch size, from the options the command names them by. */
export interface Schedule {
  lr?: number;
  batchSize?: number;
}

/** Stage 1's configuration overrides from the options (the schedule from the command's own option names). */
export function stage1Overrides(a: Parsed, schedule: Schedule): Partial<Stage1TrainConfig> {
  const stage1: Partial<Stage1TrainConfig> = defined({
    iterations: num(a, 'iterations'),
    testEvery: num(a, 'test-every'),
    batchSize: schedule.batchSize,
    lr: schedule.lr,
    seed: a.seed as number,
    selection: a.selection as 'test' | 'holdout' | undefined,
    holdoutFraction: num(a, 'holdout-fraction'),
    exactIoU: Boolean(a['exact-iou']),
    checkpointEvery: num(a, 'checkpoint-every'),
  });
  if (a['prototype-reshape']) stage1.model = { prototypeReshape: true };
  return stage1;
}

/** Stage 2's configuration overrides from the options. */
export function stage2Overrides(a: Parsed, schedule: Schedule): Partial<Stage2TrainConfig> {
  return defined({
    epochs: num(a, 'epochs'),
    batchSize: schedule.batchSize,
    lr: schedule.lr,
    maxProposals: num(a, 'max-proposals'),
    seed: a.seed as number,
    exactIoU: Boolean(a['exact-iou']),
  });
}

/**
 * --dim: the data's feature width (the first training video's .npy header) when not given; an
 * explicit value that disagrees with that file is an error naming it.
 */
export function resolveDim(data: string, explicit: number | undefined): number {
  if (explicit !== undefined && !(Number.isInteger(explicit) && explicit >= 1)) throw new CliError(`--dim must be a positive integer, received ${explicit}`);
  const over = explicit !== undefined ? overLimit('featureDim', explicit) : null;
  if (over) throw new CliError(`--dim must be ${over}, received ${explicit}`);
  if (!fs.existsSync(data)) throw new Error(`dataset folder not found: ${data}`);
  const found = dataFeatureWidth(data);
  if (!found) {
    if (explicit !== undefined) return explicit;
    throw new Error(`${path.join(data, 'features', 'train')}: no feature file of a video of split_train.txt, so the feature width cannot be read (run \`pstal check --data ${data}\`)`);
  }
  const wide = overLimit('featureDim', found.dim);
  if (wide) throw new Error(`${found.file}: feature width ${found.dim}: D must be ${wide}`);
  if (explicit !== undefined && explicit !== found.dim)
    throw new Error(`${found.file}: feature width ${found.dim} does not match --dim ${explicit} (leave --dim out to use the data's width)`);
  return found.dim;
}

/**
 * The checks of `pstal check` before any feature is loaded: warnings are printed, errors stop the
 * command with the same messages as `pstal check`.
 */
export function preflight(data: string, config: DatasetConfig, dim: number | undefined, stage1Batch?: StageBatch): DatasetFiles | undefined {
  const r = checkDataset(data, config, { dim, stage1Batch });
  const warnings = r.problems.filter((p) => p.severity === 'warning');
  if (warnings.length) console.error(formatProblems(warnings, 5).join('\n'));
  if (r.errors > 0) {
    const lines = formatProblems(r.problems.filter((p) => p.severity === 'error'), 20);
    throw new Error(`the dataset ${data} has ${r.errors} error(s) (\`pstal check --data ${data}\` lists every problem; --no-check skips these checks):\n${lines.join('\n')}`);
  }
  return r.files;
}

/** RUN/dataset.json: where the run's data came from, for `pstal report` and --resume (written by the CLI only). */
function recordDataset(out: string, data: string, config: string, featureDim: number, inputs: RunInputs | undefined): void {
  try {
    writeDatasetRecord(out, { data: path.resolve(data), config, featureDim, ...(inputs && { inputs }) });
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

