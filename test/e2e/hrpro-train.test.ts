/**
 * Stage-1 training end to end on a small synthetic dataset (pstal synth): it learns (a measured mAP
 * floor), it is deterministic for a seed, and an interrupted run resumes to exactly the same state.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset, Dataset } from '../../lib/data';
import { trainStage1, MetricsLine } from '../../lib/models/hrpro/train_stage1';
import { stage1Paths } from '../../lib/models/hrpro/checkpoint';
import { testStage1 } from '../../lib/models/hrpro/evaluate';
import { finishStage1 } from '../../lib/models/hrpro/pipeline';
import { stage1ConfigFrom } from '../../lib/models/hrpro/config';
import { loadSafetensors } from '../../lib/io/safetensors';

const D = 32;
const CLEAN = { durationScale: 0.35, noiseStd: 0.1, sceneStrength: 0, latentNoiseStrength: 0, contextStrength: 0, styleStrength: 0, mixIn: 0, classCorrelation: 0 };
let ds: Dataset;
let root: string;

test.before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-train-'));
  // The default synth realism (scene drift, class-correlated styles, latent noise) is calibrated for
  // D >= 256 and hundreds of videos; 24 training videos of D = 32 only overfit it (measured: best
  // 1.8% avg mAP after 300 steps at lr 1e-3). The clean variant keeps the task's structure (points,
  // instance lengths, ambiguous segments) and leaves out the confounders.
  await synthesizeDataset({ out: path.join(root, 'data'), dim: D, seed: 7, videos: 48, knobs: CLEAN });
  ds = loadDataset(path.join(root, 'data'), loadConfig('thumos14', { featureDim: D }));
});

test.after.always(() => fs.rmSync(root, { recursive: true, force: true }));

function ctx(out: string, extra: Record<string, unknown> = {}) {
  return { out, classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous, blockedVideos: [], quiet: true, ...extra };
}

function metrics(out: string): MetricsLine[] {
  return fs.readFileSync(stage1Paths(out).metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricsLine);
}

// lr 1e-4 (the reference's, for D = 2048) barely moves a D = 32 model in a test's budget: at D = 32
// every logit sums 64x fewer Adam-sized weight steps. Measured with these settings: best 39.3% at 200.
const CFG = { iterations: 200, testEvery: 50, seed: 3, lr: 3e-3, batchSize: 4 };

test.serial('stage 1 learns the synthetic task: average mAP(0.1:0.7) above the measured floor', async (t) => {
  const out = path.join(root, 'run-a');
  const cfg = stage1ConfigFrom(ds.config, CFG);
  const r = await trainStage1(ctx(out), cfg);
  const m = metrics(out);
  t.is(m.length, 4);
  t.log(`avg mAP by test: ${m.map((l) => (100 * l.test!.average).toFixed(2)).join(', ')}; best ${(100 * r.bestMap).toFixed(2)} at ${r.bestIteration}`);
  // floor from measured runs: 39.3% best; after 1/4 of the steps 12.9%; at lr 1e-4 (no learning) 1-4%
  t.true(r.bestMap > 0.25, `best average mAP ${r.bestMap}`);
  t.true(m[0].test!.average < r.bestMap, 'mAP improves with training');
  // the best checkpoint reproduces the best test when reloaded
  const f = finishStage1(ctx(out), cfg, r.model);
  t.true(fs.existsSync(f.proposalsFile));
  t.true(f.counts.PP > 0 && f.counts.RP > 0);
  const proposals = JSON.parse(fs.readFileSync(f.proposalsFile, 'utf8'));
  t.deepEqual(Object.keys(proposals.train).sort(), ds.train.map((v) => v.name).sort());
  const again = testStage1(r.model, ds.test, ds.classNames, cfg, { ambiguous: ds.ambiguous });
  t.true(Math.abs(again.evaluation!.map.reduce((a, b) => a + b, 0) / 7 - r.bestMap) < 1e-9);
  r.model.dispose();
});

test.serial('same seed, same machine: the same losses, mAPs and weights', async (t) => {
  const cfg = stage1ConfigFrom(ds.config, { iterations: 10, testEvery: 5, seed: 11 });
  const a = await trainStage1(ctx(path.join(root, 'det-a')), cfg);
  const b = await trainStage1(ctx(path.join(root, 'det-b')), cfg);
  const strip = (m: MetricsLine[]) => m.map(({ elapsed, ...rest }) => rest);
  t.deepEqual(strip(metrics(path.join(root, 'det-a'))), strip(metrics(path.join(root, 'det-b'))));
  const wa = loadSafetensors(stage1Paths(path.join(root, 'det-a')).last).tensors;
  const wb = loadSafetensors(stage1Paths(path.join(root, 'det-b')).last).tensors;
  for (const [k, v] of wa) t.deepEqual(v.data, wb.get(k)!.data, k);
  a.model.dispose();
  b.model.dispose();
});

test.serial('an interrupted run resumes to exactly the state of an uninterrupted one', async (t) => {
  const cfg = stage1ConfigFrom(ds.config, { iterations: 12, testEvery: 4, seed: 5, checkpointEvery: 2 });
  const full = await trainStage1(ctx(path.join(root, 'full')), cfg);
  const out = path.join(root, 'cut');
  const signal = { stop: false };
  // stop after iteration 7 (neither a test nor a checkpoint boundary): the state is saved on the way out
  const r1 = await trainStage1({ ...ctx(out), signal, onIteration: (it) => (signal.stop = it === 7) }, cfg);
  t.true(r1.interrupted);
  t.is(r1.iteration, 7);
  r1.model.dispose();
  const r2 = await trainStage1(ctx(out, { resume: true }), cfg);
  t.is(r2.iteration, 12);
  const wa = loadSafetensors(stage1Paths(path.join(root, 'full')).last).tensors;
  const wb = loadSafetensors(stage1Paths(out).last).tensors;
  for (const [k, v] of wa) t.deepEqual(v.data, wb.get(k)!.data, k);
  const strip = (m: MetricsLine[]) => m.map(({ elapsed, ...rest }) => rest);
  t.deepEqual(strip(metrics(out)), strip(metrics(path.join(root, 'full'))));
  full.model.dispose();
  r2.model.dispose();
});
