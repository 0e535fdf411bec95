/**
 * import_checkpoint.ts: a PyTorch HR-Pro checkpoint (the reference's S_Model or I_Model state dict,
 * torch.save'd, or a safetensors export of it) made into a run folder our loaders read:
 *   stage 1: RUN/stage1_best.safetensors + RUN/config.json   (what loadHrPro, `pstal detect` and
 *   stage 2: RUN/stage2_best.safetensors + RUN/stage2_config.json    `pstal test` read)
 * The feature width D and the class count C come from the tensors (stage 1: classifier.1.weight
 * [C + 1, D, 1]; stage 2: bcr.prop_fusion.0.weight [D, 3D]) and must agree with the named dataset
 * config (its class names, its featureDim or the one given), and with a stage already in RUN.
 * The weights go through our model's loadStateDict after an exact shape check, so every name
 * missing from the checkpoint or unknown to the model is reported at once. Values are copied bit
 * for bit (float32 in C order; other float dtypes converted as torch's .float()).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Rng } from '../../util/rng';
import { openRegular, writeFileAtomic } from '../../util/fs';
import { loadSafetensors, StoredTensor } from '../../io/safetensors';
import { readTorchCheckpoint, TorchDtype } from '../../io/torch';
import { loadConfig, DatasetConfig } from '../../data/config';
import { GT_FILE, groundTruthLabels, readGroundTruth } from '../../formats/ground_truth';
import { readRunConfigIfPresent, writeRunConfig } from '../../formats/run_config';
import { PROPOSALS_FILE } from '../../formats/proposals';
import { emptyRecord } from '../../formats/text';
import type { Module } from '../../nn/module';
import { Stage1Model } from './stage1';
import { Stage2Model } from './stage2';
import { saveStage1Model, stage1Paths } from './checkpoint';
import { saveStage2Model, stage2Paths } from './checkpoint';
import { stage1ConfigFrom } from './config';
import { derivedFrom, removeStages } from '../run_folder';
import { stage2ConfigFrom } from './config';
import { DuplicateKeyError, readJsonFile } from '../../util/json';

export interface ImportOptions {
  /** a torch.save'd state dict (.pt/.pth/.pkl, torch >= 1.6 zip format) or a .safetensors export */
  from: string;
  stage: 1 | 2;
  /** the run folder to write */
  out: string;
  /** dataset config (name, YAML path or loaded): class names, hyper-parameters (default thumos14) */
  config?: string | DatasetConfig;
  /** the feature width the checkpoint must have (default: a stage already in `out`, else the config's) */
  featureDim?: number;
  /** class names when the config has none (e.g. from a dataset's gt_full.json: see classNamesOf) */
  classNames?: string[];
  /** stage 1: prototype tokens by the reference's reshape of the memory (default true: a reference checkpoint was trained so) */
  prototypeReshape?: boolean;
  /** stage 1: attention heads (8; a checkpoint does not record them) */
  heads?: number;
  /** replace a checkpoint already in `out` (and drop the files derived from it) */
  force?: boolean;
}

export interface ImportResult {
  stage: 1 | 2;
  /** the checkpoint written */
  file: string;
  /** the configuration written */
  configFile: string;
  featureDim: number;
  numClasses: number | null;
  tensors: number;
  /** tensors converted from another dtype, by name */
  converted: Record<string, TorchDtype | string>;
  /** '' or the key the state dict was wrapped under ('state_dict', 'model', ...) */
  wrapper: string;
  /** files of `out` removed because they derived from the replaced checkpoint (with force) */
  removed: string[];
}

/** A state dict as float32 tensors from a PyTorch checkpoint or a safetensors file. */
export function readStateDict(file: string): { tensors: Map<string, StoredTensor>; converted: Record<string, string>; wrapper: string; format: string } {
  if (looksLikeSafetensors(file)) {
    const f = loadSafetensors(file);
    return { tensors: f.tensors, converted: emptyRecord(), wrapper: '', format: 'safetensors' };
  }
  const c = readTorchCheckpoint(file);
  const converted = emptyRecord<string>();
  for (const [k, t] of c.tensors) if (t.dtype !== 'float32') converted[k] = t.dtype;
  return { tensors: c.tensors, converted, wrapper: c.wrapper, format: `torch zip archive (version ${c.archiveVersion || '?'})` };
}

function looksLikeSafetensors(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openRegular(file).fd; // a FIFO would block an open for reading
    const head = Buffer.alloc(9);
    if (fs.readSync(fd, head, 0, 9, 0) < 9) return false;
    const n = Number(head.readBigUInt64LE(0));
    return n > 1 && n < 1e9 && head[8] === 0x7b; // '{'
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The class names a dataset folder's gt_full.json implies (sorted labels), as loadDataset derives them. */
export function classNamesOf(datasetDir: string): string[] {
  return groundTruthLabels(readGroundTruth(path.join(datasetDir, GT_FILE)));
}

const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * loadStateDict's check (every missing, unexpected and wrongly sized name) plus exact shapes
 * (loadStateDict compares sizes only), reported together; errors name the file.
 */
function loadChecked(model: Module, tensors: Map<string, StoredTensor>, file: string): void {
  const bad: string[] = [];
  for (const [k, t] of model.stateDict()) {
    const s = tensors.get(k);
    if (s && s.data.length === t.size && shapeStr(s.shape) !== shapeStr(t.shape)) bad.push(`'${k}' is ${shapeStr(s.shape)} in the checkpoint, ${shapeStr(t.shape)} in the model`);
  }
  let names = '';
  try {
    model.loadStateDict(tensors);
  } catch (e) {
    names = (e as Error).message;
  }
  if (bad.length) names = `${names || 'the checkpoint does not match the model'}\n  shapes differ: ${bad.join('; ')}`;
  if (names) throw new Error(`${file}: ${names}`);
}

/** Imports one stage's checkpoint into a run folder (see the file comment). */
export function importHrPro(o: ImportOptions): ImportResult {
  const config = typeof o.config === 'object' ? o.config : loadConfig(o.config ?? 'thumos14');
  const configName = config.file ? `config ${path.basename(config.file, path.extname(config.file))} (${config.file})` : `config ${config.name}`;
  const { tensors, converted, wrapper, format } = readStateDict(o.from);
  const from = o.from;
  const p1 = stage1Paths(o.out);
  const p2 = stage2Paths(o.out);
  const run1 = readRunConfigIfPresent(p1.config);
  const run2 = readRunConfigIfPresent(p2.config);
  const target = o.stage === 1 ? p1.best : p2.best;
  if (fs.existsSync(target) && !o.force) throw new Error(`${target} exists; pass force (--force) to replace it`);

  const need = (name: string, what: string, dims: number): StoredTensor => {
    const t = tensors.get(name);
    if (!t) {
      const keys = [...tensors.keys()];
      throw new Error(
        `${from}: no tensor '${name}' (${what}); expected an HR-Pro ${o.stage === 1 ? 'stage-1 (S_Model)' : 'stage-2 (I_Model)'} state dict, ` +
          `found ${keys.length} tensors: ${keys.slice(0, 6).join(', ')}${keys.length > 6 ? ', ...' : ''}`,
      );
    }
    if (t.shape.length !== dims) throw new Error(`${from}: tensor '${name}' is ${shapeStr(t.shape)}; ${what} must have ${dims} dimensions`);
    return t;
  };
  // the feature width the checkpoint must have: given, else a stage already in the run, else the config's
  const checkDim = (D: number, tensor: string, shape: number[]): void => {
    const sources: [number | undefined, string][] = [
      [o.featureDim, `--dim is ${o.featureDim}`],
      [(o.stage === 1 ? run2 : run1)?.featureDim as number | undefined, `the run's ${o.stage === 1 ? p2.config : p1.config} says featureDim ${(o.stage === 1 ? run2 : run1)?.featureDim}`],
    ];
    if (o.featureDim === undefined && !(o.stage === 1 ? run2 : run1)) sources.push([config.featureDim, `${configName} has featureDim ${config.featureDim} (give --dim ${D} if the features are ${D} wide)`]);
    for (const [want, why] of sources)
      if (want !== undefined && want !== D) throw new Error(`${from}: tensor '${tensor}' is ${shapeStr(shape)}, so the features are D = ${D} wide, but ${why}`);
  };
  let classNames = o.classNames ?? (run1?.classNames as string[] | undefined) ?? config.classNames;
  const removed: string[] = [];
  const drop = (files: string[]): void => {
    for (const f of files)
      if (fs.existsSync(f)) {
        fs.rmSync(f);
        removed.push(f);
      }
  };
  const imported = { from: path.resolve(from), format, wrapper: wrapper || undefined, converted: Object.keys(converted).length ? converted : undefined };
  const meta = { source: path.resolve(from), imported: format };
  fs.mkdirSync(o.out, { recursive: true });

  if (o.stage === 1) {
    const w = need('classifier.1.weight', 'the classifier, [C + 1, D, 1]', 3);
    const [C1, D, k] = w.shape;
    if (k !== 1 || C1 < 2) throw new Error(`${from}: tensor 'classifier.1.weight' is ${shapeStr(w.shape)}; expected [C + 1, D, 1] with C >= 1`);
    const C = C1 - 1;
    checkDim(D, 'classifier.1.weight', w.shape);
    classNames = o.classNames ?? config.classNames;
    if (!classNames)
      throw new Error(`${configName} names no classes; give the dataset (--data DIR: the labels of its gt_full.json) or a config with classNames`);
    if (classNames.length !== C)
      throw new Error(
        `${from}: tensor 'classifier.1.weight' is ${shapeStr(w.shape)}: ${C} classes + background, but ${o.classNames ? 'the given class list' : configName} names ${classNames.length} classes`,
      );
    const layers = new Set([...tensors.keys()].map((n) => /^encoder\.RAB\.(\d+)\./.exec(n)?.[1]).filter((x) => x !== undefined)).size;
    const ffn = tensors.get('encoder.RAB.0.linear1.weight')?.shape[0];
    const cfg1 = stage1ConfigFrom(config);
    cfg1.model = {
      ...cfg1.model,
      layers: Math.max(1, layers),
      prototypeReshape: o.prototypeReshape ?? true,
      rab: { ...(cfg1.model.rab ?? {}), ...(ffn ? { feedForward: ffn } : {}), ...(o.heads ? { heads: o.heads } : {}) } as never,
    };
    const model = new Stage1Model({ ...cfg1.model, featureDim: D, numClasses: C }, new Rng(0));
    try {
      loadChecked(model, tensors, from);
      if (o.force) {
        drop([p1.last, p1.results, p1.metrics, path.join(o.out, PROPOSALS_FILE)]);
        // trained on the replaced stage 1's ranking or base proposals: stale (an imported stage 2 stays)
        removed.push(...removeStages(derivedFrom(o.out, 1)));
      }
      saveStage1Model(p1.best, model, meta);
    } finally {
      model.dispose();
    }
    writeRunConfig(p1.config, { stage1: cfg1, featureDim: D, classNames, imported });
    return { stage: 1, file: p1.best, configFile: p1.config, featureDim: D, numClasses: C, tensors: tensors.size, converted, wrapper, removed };
  }

  const w = need('bcr.prop_fusion.0.weight', 'the proposal fusion, [D, 3D]', 2);
  const [D, D3] = w.shape;
  if (D3 !== 3 * D || D % 2) throw new Error(`${from}: tensor 'bcr.prop_fusion.0.weight' is ${shapeStr(w.shape)}; expected [D, 3D] with D even`);
  checkDim(D, 'bcr.prop_fusion.0.weight', w.shape);
  const cfg2 = stage2ConfigFrom(config);
  const model = new Stage2Model({ ...cfg2.model, featureDim: D, device: 'cpu' }, new Rng(0));
  try {
    loadChecked(model, tensors, from);
    if (o.force) {
      drop([p2.last, p2.results, p2.metrics]);
      // a chained TSPNet run on the replaced stage 2's detections: stale
      removed.push(...removeStages(derivedFrom(o.out, 2)));
    }
    saveStage2Model(p2.best, model, meta);
  } finally {
    model.dispose();
  }
  writeRunConfig(p2.config, { stage2: cfg2, featureDim: D, ...(classNames ? { classNames } : {}), imported });
  return { stage: 2, file: p2.best, configFile: p2.config, featureDim: D, numClasses: null, tensors: tensors.size, converted, wrapper, removed };
}
