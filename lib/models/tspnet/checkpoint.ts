/**
 * checkpoint.ts: a TSPNet run folder's files and its model checkpoints (safetensors under the
 * reference's TSPNet_Model names, the options in the metadata).
 *
 *   tspnet_config.json            the configuration, class names, feature width, where the base came from
 *   tspnet_metrics.jsonl, metrics.svg, tspnet_best.safetensors, tspnet_last.safetensors (the loop's)
 *   tspnet_results.json           the best checkpoint's test detections (ActivityNet format, seconds)
 *   proposals_train.json, proposals_test.json   the base proposals (ActivityNet format, seconds)
 */
import * as path from 'path';
import { saveSafetensors } from '../../io/safetensors';
import type { RunFiles } from '../../train/loop';
import type { TspNetModel } from './model';
import { loadModelWeights } from '../hrpro/checkpoint';

export function tspnetPaths(out: string): RunFiles & { proposalsTrain: string; proposalsTest: string } {
  const f = (n: string): string => path.join(out, n);
  return {
    config: f('tspnet_config.json'),
    metrics: f('tspnet_metrics.jsonl'),
    best: f('tspnet_best.safetensors'),
    last: f('tspnet_last.safetensors'),
    results: f('tspnet_results.json'),
    proposalsTrain: f('proposals_train.json'),
    proposalsTest: f('proposals_test.json'),
  };
}

export function saveTspNetModel(file: string, model: TspNetModel, meta: Record<string, string> = {}): void {
  saveSafetensors(file, model.stateDict(), {
    pstal: 'tspnet-model',
    featureDim: String(model.options.featureDim),
    numClasses: String(model.options.numClasses),
    ...meta,
  });
}

/** Weights from a safetensors file: ours, or the reference's state dict exported by name. */
export function loadTspNetWeights(model: TspNetModel, file: string): Record<string, string> {
  return loadModelWeights(model, file);
}
