/**
 * run_config.ts: what a run folder records about itself.
 *   RUN/config.json, RUN/stage2_config.json, RUN/tspnet/config.json: the training configuration
 *     of each stage ({"stage1" | "stage2" | "tspnet": {...}, "featureDim", "classNames", ...}),
 *     written when training starts, read by loadHrPro / `pstal detect`, `pstal test`, `pstal report`
 *     and `pstal import` (which writes one for an imported checkpoint);
 *   RUN/dataset.json: where the run's data came from ({"data", "config", "featureDim"}), for
 *     `pstal report` and the checks of `--resume`.
 * The method's own fields stay untyped here (lib/models/* owns them): this module checks what
 * every reader relies on.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readJson, FormatError, isObject, shown } from './text';
import { writeFileAtomic } from '../util/fs';

export const DATASET_RECORD_FILE = 'dataset.json';

export interface RunConfig {
  featureDim: number;
  classNames?: string[];
  stage1?: Record<string, unknown>;
  stage2?: Record<string, unknown>;
  tspnet?: Record<string, unknown>;
  [field: string]: unknown;
}

/** Reads a stage's config.json: featureDim a positive integer, classNames (when present) non-empty strings. */
export function readRunConfig(file: string): RunConfig {
  const c = readJson(file, 'run config');
  if (!isObject(c)) throw new FormatError(`${file}: expected a JSON object`);
  if (!(Number.isSafeInteger(c.featureDim) && (c.featureDim as number) > 0)) throw new FormatError(`${file}: field "featureDim" must be a positive integer, received ${shown(c.featureDim)}`);
  if (c.classNames !== undefined && !(Array.isArray(c.classNames) && c.classNames.every((x) => typeof x === 'string' && x.length > 0)))
    throw new FormatError(`${file}: field "classNames" must be a list of non-empty strings, received ${shown(c.classNames)}`);
  for (const k of ['stage1', 'stage2', 'tspnet'])
    if (c[k] !== undefined && !isObject(c[k])) throw new FormatError(`${file}: field "${k}" must be an object, received ${shown(c[k])}`);
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
}

/** RUN/dataset.json, or null when the run has none (an imported or library-made run). */
export function readDatasetRecord(run: string): DatasetRecord | null {
  const file = path.join(run, DATASET_RECORD_FILE);
  if (!fs.existsSync(file)) return null;
  const r = readJson(file, 'run dataset record');
  if (!isObject(r) || typeof r.data !== 'string' || typeof r.config !== 'string' || !(Number.isSafeInteger(r.featureDim) && (r.featureDim as number) > 0))
    throw new FormatError(`${file}: expected {"data": folder, "config": name, "featureDim": D}, received ${shown(r)}`);
  return { data: r.data, config: r.config, featureDim: r.featureDim as number };
}

export function writeDatasetRecord(run: string, record: DatasetRecord): void {
  writeFileAtomic(path.join(run, DATASET_RECORD_FILE), JSON.stringify(record, null, 2) + '\n');
}
