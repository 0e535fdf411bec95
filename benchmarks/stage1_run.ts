/**
 * stage1_run.ts: the synthesized stage-1 run that benchmarks/stage1.ts times and
 * scripts/profile-stage1.ts takes apart, set up in one place so that both see the same thing:
 * the real THUMOS14 annotations with `pstal synth` features at D (seed 0), the reference's config,
 * a model with a random prototype memory (as the reference's side of the bench: the memory's
 * initialisation is not what is timed), Adam, and batches of 16 training videos in split order
 * (iteration i takes videos 16i .. 16i + 15, as scripts/bench-reference-stage1.py does).
 */
import * as fs from 'fs';
import * as path from 'path';
import { synthesizeDataset } from '../lib/data/synth';
import { loadConfig, loadDataset } from '../lib/data';
import type { DatasetConfig } from '../lib/data/config';
import { Stage1Model } from '../lib/models/hrpro/stage1';
import { stage1Step } from '../lib/models/hrpro/train_stage1';
import { pointMatrix, Stage1Video } from '../lib/models/hrpro/videos';
import { stage1ConfigFrom } from '../lib/models/hrpro/config';
import { Adam } from '../lib/nn/optim';
import { Rng } from '../lib/util/rng';
import { Device } from '../lib/runtime/backend';

/** The THUMOS14 annotations: PSTAL_THUMOS14, or ../shared/data/THUMOS14 beside the project. */
export const THUMOS14_ANNOTATIONS = process.env.PSTAL_THUMOS14 ?? path.resolve(__dirname, '..', '..', 'shared', 'data', 'THUMOS14');

export type Stage1RunData = ReturnType<typeof loadStage1RunData>;

/** Synthesizes the set into `dir` unless it is there already. */
export async function synthesizeStage1Set(dir: string, D: number): Promise<void> {
  if (!fs.existsSync(path.join(THUMOS14_ANNOTATIONS, 'gt_full.json'))) throw new Error(`no THUMOS14 annotations at ${THUMOS14_ANNOTATIONS} (set PSTAL_THUMOS14)`);
  if (!fs.existsSync(path.join(dir, 'features'))) await synthesizeDataset({ out: dir, annotations: THUMOS14_ANNOTATIONS, dim: D, seed: 0 });
}

export function loadStage1RunData(dir: string, D: number) {
  const config: DatasetConfig = loadConfig('thumos14', { featureDim: D });
  const ds = loadDataset(dir, config);
  const cfg = stage1ConfigFrom(config);
  const C = ds.classNames.length;
  const pointMats = new Map(ds.train.map((v) => [v.name, pointMatrix(v, C)]));
  return { config, ds, cfg, C, D, pointMats };
}

/** Iteration i's 16 training videos, in split order. */
export function splitOrderBatch(data: Stage1RunData, i: number): Stage1Video[] {
  const train = data.ds.train;
  return Array.from({ length: 16 }, (_, j) => train[(16 * i + j) % train.length]);
}

export interface Stage1Run {
  model: Stage1Model;
  adam: Adam;
  /** one training iteration on splitOrderBatch(i) */
  step(i: number): void;
  dispose(): void;
}

export function newStage1Run(data: Stage1RunData, device: Device): Stage1Run {
  const { C, D, cfg } = data;
  const model = new Stage1Model({ featureDim: D, numClasses: C, device }, new Rng(0));
  const rng = new Rng(1);
  model.memory.tensor.buffer.write(Float32Array.from({ length: C * D }, () => 0.1 * rng.normal()));
  const adam = new Adam(model.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
  return {
    model,
    adam,
    step: (i) => void stage1Step(model, adam, splitOrderBatch(data, i), data.pointMats, cfg),
    dispose: () => {
      adam.dispose();
      model.dispose();
    },
  };
}
