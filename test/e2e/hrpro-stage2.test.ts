/**
 * HR-Pro stage 2 (SPEC §4): RoI features against a float64 transcription of the reference's
 * extract_roi_features (zero pad, 0.5 offset, torchvision roi_align with adaptive sampling), the
 * differentiable segment IoU against finite differences, the losses and the score fusion against
 * plain recomputations, and end to end on a small synthetic dataset: stage 2 keeps stage 1's mAP
 * while it learns (its loss falls, its test passes change) and re-scores (its detections are not
 * stage 1's), and a run stopped mid-epoch resumes to exactly the uninterrupted state.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ops from '../../lib/ops';
import { Tensor, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { Rng } from '../../lib/util/rng';
import { Stage2Model, proposalFeatures, refineProposals } from '../../lib/models/hrpro/stage2';
import { stage2Losses, trainStage2, Stage2MetricsLine } from '../../lib/models/hrpro/train_stage2';
import { stage2Detect } from '../../lib/models/hrpro/inference';
import { trainingProposals } from '../../lib/models/hrpro/proposals';
import { readProposals } from '../../lib/formats/proposals';
import { stage1Paths, stage2Paths } from '../../lib/models/hrpro/checkpoint';
import { trainStage1 } from '../../lib/models/hrpro/train_stage1';
import { finishStage1 } from '../../lib/models/hrpro/pipeline';
import { stage1ConfigFrom } from '../../lib/models/hrpro/config';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset, Dataset } from '../../lib/data';
import { loadSafetensors } from '../../lib/io/safetensors';
import { loadHrPro, detect } from '../../lib/models/hrpro/detect';

/** torchvision roi_align (aligned = false, adaptive sampling) on a [T, D] map, one RoI, float64. */
function roiAlignRef(x: Float64Array, T: number, D: number, y1: number, y2: number, bins: number): Float64Array {
  const out = new Float64Array(bins * D);
  const h = Math.max(y2 - y1, 1);
  const binH = h / bins;
  const grid = Math.ceil(h / bins);
  for (let b = 0; b < bins; b++) {
    for (let i = 0; i < grid; i++) {
      let y = y1 + b * binH + ((i + 0.5) * binH) / grid;
      if (y < -1 || y > T) continue;
      if (y <= 0) y = 0;
      let lo = Math.floor(y);
      let hi: number;
      if (lo >= T - 1) {
        lo = hi = T - 1;
        y = lo;
      } else hi = lo + 1;
      const l = y - lo;
      for (let d = 0; d < D; d++) out[b * D + d] += ((1 - l) * x[lo * D + d] + l * x[hi * D + d]) / grid;
    }
  }
  return out;
}

/** The reference's extract_roi_features for one video, in float64. */
function proposalFeaturesRef(feat: Float32Array, T: number, D: number, props: number[][], bins = 12): Float64Array[] {
  const longest = Math.max(...props.map(([s, e]) => e - s));
  const pad = Math.ceil(0.25 * longest) + 1;
  const x = new Float64Array((T + 2 * pad) * D);
  for (let i = 0; i < T * D; i++) x[pad * D + i] = feat[i];
  return props.map(([s, e]) => {
    const len = e - s;
    return roiAlignRef(x, T + 2 * pad, D, s - 0.25 * len + pad - 0.5, e + 0.25 * len + pad - 0.5, bins);
  });
}

test('RoI features match the reference transcription at fractional boundaries and the video edges', (t) => {
  const rng = new Rng(1);
  for (const [T, D] of [[1, 3], [7, 4], [40, 6]]) {
    const feat = rng.uniformArray(T * D, -1, 1);
    const props: number[][] = [
      [0, T],
      [0.3, Math.min(T, 2.7)],
      [-0.4, 0.6],
      [T - 0.5, T + 0.25],
      [T * 0.25, T * 0.25],
      [1.234, 1.234 + T * 0.61],
    ];
    const got = proposalFeatures(feat, T, D, Float32Array.from(props.flat()), { roiBins: 12, extension: 0.25, device: 'cpu' });
    const g = got.toArray();
    const want = proposalFeaturesRef(feat, T, D, props);
    let worst = 0;
    want.forEach((w, r) => w.forEach((v, i) => (worst = Math.max(worst, Math.abs(g[r * 12 * D + i] - v)))));
    t.true(worst < 1e-5, `T=${T} D=${D}: max abs diff ${worst}`);
    got.dispose();
  }
});

test('maxSegmentIoU: values by hand, gradient against finite differences, zero where clamped', (t) => {
  const targets = [2, 6, 10, 12];
  const v = ops.maxSegmentIoUValues([3, 7, 0, 1, 11, 13, 2, 6], targets);
  t.true(Math.abs(v.iou[0] - 3 / 5) < 1e-6);
  t.is(v.iou[1], 0);
  t.true(Math.abs(v.iou[2] - 1 / 3) < 1e-6);
  t.deepEqual([...v.target], [0, 0, 1, 0]);
  t.true(Math.abs(v.iou[3] - 1) < 1e-6);
  t.deepEqual([...ops.maxSegmentIoUValues([1, 2], []).iou], [0]);

  const s0 = [3.1, 0.2, 10.6, 1.5];
  const e0 = [7.3, 1.1, 12.9, 5.2];
  const f = (s: number[], e: number[]) => [...ops.maxSegmentIoUValues(s.flatMap((x, i) => [x, e[i]]), targets).iou].reduce((a, b, i) => a + (i + 1) * b, 0);
  const start = Tensor.from(s0, [4]);
  const end = Tensor.from(e0, [4]);
  start.requiresGrad = true;
  end.requiresGrad = true;
  const y = ops.maxSegmentIoU(start, end, targets);
  backward(ops.sumAll(ops.mul(y, Tensor.from([1, 2, 3, 4], [4]))));
  const gs = start.grad!.toArray();
  const ge = end.grad!.toArray();
  const h = 1e-3;
  for (let i = 0; i < 4; i++) {
    const sp = [...s0], sm = [...s0], ep = [...e0], em = [...e0];
    sp[i] += h; sm[i] -= h; ep[i] += h; em[i] -= h;
    t.true(Math.abs((f(sp, e0) - f(sm, e0)) / (2 * h) - gs[i]) < 2e-3, `d/ds[${i}]`);
    t.true(Math.abs((f(s0, ep) - f(s0, em)) / (2 * h) - ge[i]) < 2e-3, `d/de[${i}]`);
  }
  t.is(gs[1], 0);
  t.is(ge[1], 0);
});

function smoothL1(a: number, b: number): number {
  const d = Math.abs(a - b);
  return d < 1 ? 0.5 * d * d : d - 0.5;
}

test('stage-2 losses: the score loss over positives and the drawn share of negatives, the regression loss over positives', (t) => {
  const D = 8;
  const T = 30;
  const rng = new Rng(5);
  const model = new Stage2Model({ featureDim: D, dropout: 0 }, new Rng(2));
  const feat = rng.uniformArray(T * D, -1, 1);
  const proposals = Float32Array.from([2, 9, 3, 8, 20, 24, 0, 1, 14, 18, 25, 29, 10, 11]);
  const targets = Float32Array.from([2, 8, 20, 25]);
  const l = tidy(() => {
    const r = stage2Losses(model, { features: feat, T }, proposals, targets, 0.3, new Rng(9));
    return { score: r.score, reg: r.reg };
  });
  // recompute: which negatives the same draws keep, then the two means in float64
  const M = proposals.length / 2;
  const { iou } = ops.maxSegmentIoUValues(proposals, targets);
  const high = [...Array(M).keys()].filter((m) => iou[m] >= 0.3);
  const low = [...Array(M).keys()].filter((m) => iou[m] < 0.3);
  const share = Math.min(1, high.length / low.length);
  const draws = new Rng(9);
  const kept = low.filter(() => draws.uniform() > 1 - share);
  const scored = [...high, ...kept];
  const out = model.forward(model.proposalFeatures(feat, T, proposals));
  const c = out.completeness.toArray();
  const wantScore = scored.reduce((a, m) => a + smoothL1(c[m], iou[m]), 0) / scored.length;
  const ref = refineProposals(proposals, out);
  const rs = ref.start.toArray();
  const re = ref.end.toArray();
  const refined = ops.maxSegmentIoUValues(Array.from({ length: M }, (_, m) => [rs[m], re[m]]).flat(), targets).iou;
  const wantReg = high.reduce((a, m) => a + smoothL1(refined[m], 1), 0) / high.length;
  t.true(high.length === 3 && low.length === 4, `positives ${high} negatives ${low}`);
  t.true(Math.abs(l.score - wantScore) < 1e-6, `score ${l.score} vs ${wantScore}`);
  t.true(Math.abs(l.reg - wantReg) < 1e-6, `reg ${l.reg} vs ${wantReg}`);
  // without targets nothing is positive and no negative is drawn: no loss at all
  const none = stage2Losses(model, { features: feat, T }, proposals, new Float32Array(0), 0.3, new Rng(1));
  t.is(none.total, null);
  model.dispose();
});

test('score fusion: each proposal and its refinement, completeness + OIC score, in seconds', (t) => {
  const D = 8;
  const T = 20;
  const model = new Stage2Model({ featureDim: D }, new Rng(3));
  const feat = new Rng(4).uniformArray(T * D, -1, 1);
  const pp = { proposals: Float32Array.from([1, 5, 10, 16]), classIndex: Int32Array.from([0, 2]), score: Float32Array.from([0.25, -0.5]) };
  const { candidates } = stage2Detect(model, { features: feat, T, name: 'v' }, pp, ['a', 'b', 'c'], { secondsPerSnippet: 0.64, softNmsSigma: 0.3, exactIoU: false, maxProposals: 1 });
  model.eval();
  const out = model.forward(model.proposalFeatures(feat, T, pp.proposals));
  const c0 = out.completeness.toArray();
  const ref = refineProposals(pp.proposals, out);
  const rs = ref.start.toArray();
  const re = ref.end.toArray();
  const c1 = model.forward(model.proposalFeatures(feat, T, Float32Array.from([rs[0], re[0], rs[1], re[1]]))).completeness.toArray();
  const valid = [0, 1].filter((i) => re[i] >= rs[i]);
  t.is(candidates.length, 2 + valid.length);
  for (const i of [0, 1]) {
    t.true(Math.abs(candidates[i].score - (c0[i] + pp.score[i])) < 1e-6);
    t.true(Math.abs(candidates[i].start - pp.proposals[2 * i] * 0.64) < 1e-6);
    t.is(candidates[i].classIndex, pp.classIndex[i]);
  }
  valid.forEach((i, j) => {
    t.true(Math.abs(candidates[2 + j].score - (c1[i] + pp.score[i])) < 1e-5);
    t.true(Math.abs(candidates[2 + j].end - re[i] * 0.64) < 1e-5);
  });
  model.dispose();
});

// --- end to end on a small synthetic dataset ----------------------------------------------------

const D = 32;
const CLEAN = { durationScale: 0.35, noiseStd: 0.1, sceneStrength: 0, latentNoiseStrength: 0, contextStrength: 0, styleStrength: 0, mixIn: 0, classCorrelation: 0 };
let ds: Dataset;
let root: string;
let stage1Best = 0;

test.before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-stage2-'));
  await synthesizeDataset({ out: path.join(root, 'data'), dim: D, seed: 7, videos: 48, knobs: CLEAN });
  ds = loadDataset(path.join(root, 'data'), loadConfig('thumos14', { featureDim: D }));
  const ctx = { out: path.join(root, 'run'), classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous, blockedVideos: [], quiet: true };
  const cfg = stage1ConfigFrom(ds.config, { iterations: 200, testEvery: 50, seed: 3, lr: 3e-3, batchSize: 4 });
  const r = await trainStage1(ctx, cfg);
  stage1Best = r.bestMap;
  finishStage1(ctx, cfg, r.model);
  r.model.dispose();
});

test.after.always(() => fs.rmSync(root, { recursive: true, force: true }));

function ctx2(out: string, extra: Record<string, unknown> = {}) {
  return {
    out,
    classNames: ds.classNames,
    train: ds.train,
    test: ds.test,
    ambiguous: ds.ambiguous,
    blockedVideos: [],
    proposals: readProposals(path.join(root, 'run', 'proposals.json')),
    quiet: true,
    ...extra,
  };
}

// D = 32 needs a larger step than the reference's 5e-5 (see test/e2e/hrpro-train.test.ts)
const CFG2 = { epochs: 30, lr: 1e-3, batchSize: 4, seed: 1, tiou: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7] };

test.serial('stage 2 learns and re-scores, keeping stage 1\'s average mAP on the synthetic task; detect() on a test video gives the pipeline\'s detections', async (t) => {
  const out = path.join(root, 'run');
  const r = await trainStage2(ctx2(out), CFG2);
  t.log(`stage 1 best ${(100 * stage1Best).toFixed(2)}, stage 2 best ${(100 * r.bestMap).toFixed(2)} at epoch ${r.bestEpoch}`);
  // measured: 56.65 -> 56.42, best at epoch 1 (2-core Intel Xeon, 2026-12-06, on commit d0b589f,
  // `npx ava test/e2e/hrpro-stage2.test.ts`; earlier 55.29 -> 55.12). Before the cas_P correction of
  // stage-1 inference (SPEC §2) stage 1 scored 39.25 here and stage 2 lifted it to 42.35; with
  // the corrected stage 1 this small clean task leaves stage 2 nothing to add, so what is checked
  // is that it keeps stage 1's quality (the D = 256 THUMOS14 run in the README shows its gain).
  t.true(r.bestMap > stage1Best - 0.01, `stage 2 ${r.bestMap} vs stage 1 ${stage1Best}`);
  t.true(r.bestMap > 0.45, `stage 2 ${r.bestMap}`);
  t.true(fs.existsSync(stage2Paths(out).best) && fs.existsSync(stage2Paths(out).results));
  // keeping stage 1's mAP does not show that stage 2 did anything: a stage 2 that neither learns
  // nor scores would keep it too. So: (1) training changes the model: its loss falls and its test
  // passes (deterministic, eval mode) change from epoch to epoch; (2) its detections are its own,
  // not stage 1's: every detection is re-scored with the completeness (added to the stage-1
  // score) and the refined proposals join the originals.
  const lines = fs.readFileSync(stage2Paths(out).metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Stage2MetricsLine);
  t.is(lines.length, CFG2.epochs);
  const loss = lines.map((l) => l.loss);
  const lastFive = loss.slice(-5).reduce((a, b) => a + b, 0) / 5;
  const averages = new Set(lines.map((l) => l.test!.average));
  t.log(`stage-2 loss: epoch 1 ${loss[0].toFixed(4)}, mean of the last five ${lastFive.toFixed(4)}; ${averages.size} distinct test mAPs over ${lines.length} epochs`);
  // measured: 0.1402 -> 0.0801; 30 distinct test mAPs in 30 epochs
  t.true(lastFive < 0.8 * loss[0], `the training loss falls: ${loss[0]} -> ${lastFive}`);
  t.true(averages.size >= CFG2.epochs / 2, `${averages.size} distinct test mAPs in ${CFG2.epochs} epochs`);
  const s1 = JSON.parse(fs.readFileSync(stage1Paths(out).results, 'utf8')).results as Record<string, { score: number; segment: number[] }[]>;
  const s2 = JSON.parse(fs.readFileSync(stage2Paths(out).results, 'utf8')).results as Record<string, { score: number; segment: number[] }[]>;
  const key = (d: { score: number; segment: number[] }) => `${d.segment[0].toFixed(4)},${d.segment[1].toFixed(4)},${d.score.toFixed(4)}`;
  // soft-NMS decays many scores of both stages to about 0, where they would match by rounding:
  // the comparison takes the detections scored above 1e-3
  let shared = 0;
  let total = 0;
  for (const [v, dets] of Object.entries(s2)) {
    const one = new Set((s1[v] ?? []).map(key));
    const scored = dets.filter((d) => d.score > 1e-3);
    total += scored.length;
    shared += scored.filter((d) => one.has(key(d))).length;
  }
  const count = (r: typeof s1) => Object.values(r).reduce((a, d) => a + d.length, 0);
  t.log(`stage-2 detections scored above 1e-3 that are stage 1's (segment and score): ${shared} of ${total}; detections ${count(s1)} -> ${count(s2)}`);
  // measured: 0 of 1289; 2058 -> 4123
  t.true(total > 100 && shared < 0.05 * total, `${shared} of ${total} stage-2 detections are stage 1's`);
  t.true(count(s2) > 1.5 * count(s1), `the refined proposals join the originals: ${count(s1)} -> ${count(s2)} detections`);
  const ins = trainingProposals(ctx2(out).proposals.train[ds.train[0].name], 25 / 16);
  t.true(ins.proposals.length > 0 && ins.targets.length > 0);
  r.model.dispose();

  // the run folder now holds both stages: detect() on test videos reproduces the test pass of the
  // best stage-2 checkpoint (stage2_results.json), ambiguous filter included
  const model = loadHrPro(out);
  const saved = JSON.parse(fs.readFileSync(stage2Paths(out).results, 'utf8')).results;
  for (const v of ds.test.slice(0, 4)) {
    // clip: false is the evaluation's (the reference's) output; the default clips segments to the video
    const d = await detect(model, { data: v.features, shape: [v.T, v.D] }, { name: v.name, ambiguous: ds.ambiguous, clip: false });
    t.deepEqual(JSON.parse(JSON.stringify(d.detections)), saved[v.name], v.name);
    const clipped = detect(model, { data: v.features, shape: [v.T, v.D] }, { name: v.name, ambiguous: ds.ambiguous }).detections;
    t.true(clipped.every((x) => x.segment[0] >= 0 && x.segment[1] <= v.T * model.cfg1.secondsPerSnippet && x.segment[0] < x.segment[1]), v.name);
  }
  model.dispose();
});

test.serial('a stage-2 run stopped mid-epoch resumes to exactly the uninterrupted state', async (t) => {
  const cfg = { ...CFG2, epochs: 3 };
  const full = await trainStage2(ctx2(path.join(root, 'full')), cfg);
  const out = path.join(root, 'cut');
  const signal = { stop: false };
  // 24 videos / 4 = 6 batches an epoch: stop after batch 9, in the middle of epoch 2
  const r1 = await trainStage2(ctx2(out, { signal, onBatch: (b: number) => (signal.stop = b === 9) }), cfg);
  t.true(r1.interrupted);
  r1.model.dispose();
  const r2 = await trainStage2(ctx2(out, { resume: true }), cfg);
  t.is(r2.epoch, 3);
  const wa = loadSafetensors(stage2Paths(path.join(root, 'full')).last).tensors;
  const wb = loadSafetensors(stage2Paths(out).last).tensors;
  for (const [k, v] of wa) t.deepEqual(v.data, wb.get(k)!.data, k);
  const read = (o: string) => fs.readFileSync(stage2Paths(o).metrics, 'utf8').trim().split('\n').map((l) => {
    const { elapsed, ...rest } = JSON.parse(l) as Stage2MetricsLine;
    return rest;
  });
  t.deepEqual(read(out), read(path.join(root, 'full')));
  full.model.dispose();
  r2.model.dispose();
});
