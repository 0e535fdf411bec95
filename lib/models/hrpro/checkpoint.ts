/**
 * checkpoint.ts: where HR-Pro keeps things in a run folder (both stages' file names) and its model
 * checkpoints: the best weights as safetensors under the reference's PyTorch names (SPEC §8), with
 * the model's options in the metadata; loading refuses a checkpoint whose names differ.
 */
import * as path from 'path';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors';
import type { RunFiles } from '../../train/loop';
import type { Stage1Model } from './stage1';
import type { Stage2Model } from './stage2';

const STAGE1_FILES: RunFiles = {
  config: 'config.json',
  metrics: 'stage1_metrics.jsonl',
  best: 'stage1_best.safetensors',
  last: 'stage1_last.safetensors',
  results: 'stage1_results.json',
};
const STAGE2_FILES: RunFiles = {
  config: 'stage2_config.json',
  metrics: 'stage2_metrics.jsonl',
  best: 'stage2_best.safetensors',
  last: 'stage2_last.safetensors',
  results: 'stage2_results.json',
};

function inFolder(out: string, files: RunFiles): RunFiles {
  return Object.fromEntries(Object.entries(files).map(([k, f]) => [k, path.join(out, f)])) as unknown as RunFiles;
}

export function stage1Paths(out: string): RunFiles {
  return inFolder(out, STAGE1_FILES);
}

export function stage2Paths(out: string): RunFiles {
  return inFolder(out, STAGE2_FILES);
}

export function saveStage1Model(file: string, model: Stage1Model, meta: Record<string, string> = {}): void {
  saveSafetensors(file, model.stateDict(), {
    pstal: 'stage1-model',
    featureDim: String(model.options.featureDim),
    numClasses: String(model.options.numClasses),
    prototypeReshape: String(model.options.prototypeReshape),
    ...meta,
  });
}

/** A model's weights from a safetensors file (ours, or a PyTorch state dict exported by name). */
export function loadStage1Weights(model: Stage1Model, file: string): Record<string, string> {
  const f = loadSafetensors(file);
  const own = new Set(model.stateDict().keys());
  const state = new Map([...f.tensors].filter(([k]) => own.has(k) || !k.startsWith('optimizer.')));
  try {
    model.loadStateDict(state);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return f.metadata;
}

export function saveStage2Model(file: string, model: Stage2Model, meta: Record<string, string> = {}): void {
  saveSafetensors(file, model.stateDict(), { pstal: 'stage2-model', featureDim: String(model.options.featureDim), ...meta });
}

/**
 * A model's weights from a safetensors file (ours, or a reference state dict exported by name),
 * leaving out the optimizer state a training-state file also holds; errors name the file. Returns
 * the file's metadata. Stage 2's and TSPNet's loader (stage 1 also keeps its memory buffer).
 */
export function loadModelWeights(model: { loadStateDict(state: Map<string, { data: Float32Array; shape: number[] }>): void }, file: string): Record<string, string> {
  const f = loadSafetensors(file);
  try {
    model.loadStateDict(new Map([...f.tensors].filter(([k]) => !k.startsWith('optimizer.'))));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return f.metadata;
}

export function loadStage2Weights(model: Stage2Model, file: string): Record<string, string> {
  return loadModelWeights(model, file);
}
