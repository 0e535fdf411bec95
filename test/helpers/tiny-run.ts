/**
 * A small trained HR-Pro run folder (both stages) on synthetic THUMOS-like data, for the tests and
 * benchmarks that need a model to serve: a few seconds at D = 32, a few tens at D = 2048. Returns
 * the run folder and the test videos' feature files.
 */
import * as fs from 'fs';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset } from '../../lib/data';
import { trainStage1 } from '../../lib/models/hrpro/train_stage1';
import { stage1ConfigFrom, stage2ConfigFrom } from '../../lib/models/hrpro/config';
import { finishStage1 } from '../../lib/models/hrpro/pipeline';
import { trainStage2 } from '../../lib/models/hrpro/train_stage2';
import { readProposals } from '../../lib/formats/proposals';

export interface TinyRun {
  run: string;
  /** the test videos' .npy files */
  features: string[];
  dim: number;
}

export async function tinyRun(root: string, o: { dim?: number; videos?: number; iterations?: number; durationScale?: number } = {}): Promise<TinyRun> {
  const D = o.dim ?? 32;
  const data = path.join(root, 'data');
  await synthesizeDataset({ out: data, dim: D, seed: 0, videos: o.videos ?? 24, knobs: { durationScale: o.durationScale ?? 0.2 } });
  const ds = loadDataset(data, loadConfig('thumos14', { featureDim: D }));
  const run = path.join(root, 'run');
  const iterations = o.iterations ?? 20;
  const cfg = stage1ConfigFrom(ds.config, { iterations, testEvery: iterations, batchSize: 4, seed: 0, lr: 1e-3 });
  const ctx = { out: run, classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous, blockedVideos: [], quiet: true, log: () => undefined };
  const r = await trainStage1(ctx, cfg);
  const f = finishStage1(ctx, cfg, r.model);
  r.model.dispose();
  const r2 = await trainStage2({ ...ctx, proposals: readProposals(f.proposalsFile) }, stage2ConfigFrom(ds.config, { epochs: 1, seed: 0 }));
  r2.model.dispose();
  const dir = path.join(data, 'features', 'test');
  return { run, dim: D, features: fs.readdirSync(dir).sort().map((n) => path.join(dir, n)) };
}
