/**
 * run_config.ts: what a run folder records about itself.
 *   RUN/config.json, RUN/stage2_config.json, RUN/tspnet/config.json: the training configuration
 *     of each stage ({"stage1" | "stage2" | "tspnet": {...}, "featureDim", "classNames", ...}),
 *     written when training starts, read by loadHrPro / `pstal detect`, `pstal test`, `pstal report`
 *     and `pstal import` (which writes one for an imported checkpoint);
 *   RUN/dataset.json: where the run's data came from ({"data", "config", "featureDim", "inputs"}),
 *     for `pstal report` and the checks of `--resume`.
 * A trained stage's config also records what decides its numbers besides the configuration (see
 * lib/train/resume.ts): "inputs" (the data folder and digests of its annotation files and feature
 * files, the dataset config's content, the stage-1 ranking or base proposals a later stage learns
 * from), "compute" (device, matrix-product precision), and "changes" (what a --resume changed, at
 * the step it took effect: a longer schedule, another device, a moved data folder).
 * The method's own fields stay untyped here (lib/models/* owns them): this module checks what
 * every reader relies on.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readJson, FormatError, isObject, shown } from './text';
import { writeFileAtomic } from '../util/fs';

export const DATASET_RECORD_FILE = 'dataset.json';

/** What a training run was computed from besides its configuration (lib/train/resume.ts computes it). */
export interface RunInputs {
  /** the dataset folder (absolute), a digest of each annotation file, and of the feature files' list */
  data?: { folder: string; annotations: Record<string, string>; features: { files: number; bytes: number; digest: string } };
  /** the dataset config's content (name, hyper-parameters, classes, evaluation; not where its file is) */
  config?: Record<string, unknown>;
  /** stage 2: the digest of RUN/proposals.json; TSPNet: of proposals_{train,test}.json */
  proposals?: string | Record<string, string>;
}

/** One setting a --resume changed, at the step it took effect. */
export interface ConfigChange {
  /** the training step (stage 1 and TSPNet: iterations; stage 2: batches) done before the change */
  step: number;
  /** the same step in the method's words: 'iteration 4', 'epoch 2' */
  where: string;
  /** the configuration path: 'stage1.iterations', 'compute.device', 'inputs.data.folder' */
  field: string;
  from: unknown;
  to: unknown;
}

export interface RunConfig {
  featureDim: number;
  classNames?: string[];
  stage1?: Record<string, unknown>;
  stage2?: Record<string, unknown>;
  tspnet?: Record<string, unknown>;
  inputs?: RunInputs;
  compute?: { device: string; precision: string };
  changes?: ConfigChange[];
  /** set by `pstal import`: the stage's checkpoint came from elsewhere (a finished stage, never trained here) */
  imported?: Record<string, unknown>;
  [field: string]: unknown;
}

/** Reads a stage's config.json: featureDim a positive integer, classNames (when present) non-empty strings. */
export function readRunConfig(file: string): RunConfig {
  const c = readJson(file, 'run config');
  if (!isObject(c)) throw new FormatError(`${file}: expected a JSON object`);
  if (!(Number.isSafeInteger(c.featureDim) && (c.featureDim as number) > 0)) throw new FormatError(`${file}: field "featureDim" must be a positive integer, received ${shown(c.featureDim)}`);
  if (c.classNames !== undefined && !(Array.isArray(c.classNames) && c.classNames.every((x) => typeof x === 'string' && x.length > 0)))
    throw new FormatError(`${file}: field "classNames" must be a list of non-empty strings, received ${shown(c.classNames)}`);
  for (const k of ['stage1', 'stage2', 'tspnet', 'inputs', 'compute', 'imported'])
    if (c[k] !== undefined && !isObject(c[k])) throw new FormatError(`${file}: field "${k}" must be an object, received ${shown(c[k])}`);
  if (c.changes !== undefined && !(Array.isArray(c.changes) && c.changes.every((x) => isObject(x) && typeof x.field === 'string' && Number.isSafeInteger(x.step))))
    throw new FormatError(`${file}: field "changes" must be a list of {"step", "where", "field", "from", "to"}, received ${shown(c.changes)}`);
  return c as RunConfig;
}

/** A run config, or null when the file is absent. */
export function readRunConfigIfPresent(file: string): RunConfig | null {
  return fs.existsSync(file) ? readRunConfig(file) : null;
}

export function writeRunConfig(file: string, config: RunConfig | Record<string, unknown>): void {
  writeFileAtomic(file, JSON.stringify(config, null, 2));
}

export interface DatasetRecord {
  /** the dataset folder, absolute */
  data: string;
  /** the dataset config's name or YAML file */
  config: string;
  featureDim: number;
  /** what the data folder and config held when the run was made (absent in runs of older versions) */
  inputs?: RunInputs;
}

/** RUN/dataset.json, or null when the run has none (an imported or library-made run). */
export function readDatasetRecord(run: string): DatasetRecord | null {
  const file = path.join(run, DATASET_RECORD_FILE);
  if (!fs.existsSync(file)) return null;
  const r = readJson(file, 'run dataset record');
  if (!isObject(r) || typeof r.data !== 'string' || typeof r.config !== 'string' || !(Number.isSafeInteger(r.featureDim) && (r.featureDim as number) > 0))
    throw new FormatError(`${file}: expected {"data": folder, "config": name, "featureDim": D}, received ${shown(r)}`);
  if (r.inputs !== undefined && !isObject(r.inputs)) throw new FormatError(`${file}: field "inputs" must be an object, received ${shown(r.inputs)}`);
  return { data: r.data, config: r.config, featureDim: r.featureDim as number, ...(r.inputs !== undefined && { inputs: r.inputs as RunInputs }) };
}

export function writeDatasetRecord(run: string, record: DatasetRecord): void {
  writeFileAtomic(path.join(run, DATASET_RECORD_FILE), JSON.stringify(record, null, 2) + '\n');
}
