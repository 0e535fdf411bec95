/**
 * TSPNet training on a tiny synthetic dataset (D = 16): proposals files in, an exact resume after a
 * kill, the base proposals from an HR-Pro run folder (both stages), the point update (the paper's
 * and the reference's), and the errors a bad proposals file gets, each naming the file.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset, Dataset } from '../../lib/data';
import { loadSafetensors } from '../../lib/io/safetensors';
import { train, loadTspNet, detect } from '../../lib/models/tspnet/run';
import { tspnetPaths } from '../../lib/models/tspnet/checkpoint';
import { readBaseProposals, toSnippets, pyRound, BaseProposal } from '../../lib/models/tspnet/proposals';
import { proposalLabels, updatedPoints, TspPoint } from '../../lib/models/tspnet/labels';
import { sample, subset } from '../../lib/models/tspnet/train';
import type { TspNetMetricsLine } from '../../lib/models/tspnet/train';
import { runHrPro } from '../../lib/models/hrpro/run';
import { Rng } from '../../lib/util/rng';

const D = 16;
const CLEAN = { durationScale: 0.3, noiseStd: 0.1, sceneStrength: 0, latentNoiseStrength: 0, contextStrength: 0, styleStrength: 0, mixIn: 0, classCorrelation: 0 };
let ds: Dataset;
let root: string;
let files: { train: string; test: string };

/** Jittered ground-truth segments and random ones, as a base locator might give (seconds). */
function makeProposals(videos: Dataset['train'], seed: number): Record<string, BaseProposal[]> {
  const rng = new Rng(seed);
  const out: Record<string, BaseProposal[]> = {};
  for (const v of videos) {
    const end = v.T * 0.64;
    const list: BaseProposal[] = [];
    for (const g of v.gt)
      for (let k = 0; k < 4; k++) {
        const s = Math.max(0, g.segment[0] + rng.normal() * 0.6);
        const e = Math.min(end, g.segment[1] + rng.normal() * 0.6);
        if (e - s > 0.3) list.push({ segment: [s, e], label: g.label, score: rng.uniform() });
      }
    for (let k = 0; k < 6; k++) {
      const s = rng.uniform() * (end - 1);
      list.push({ segment: [s, Math.min(end, s + 0.5 + rng.uniform() * 4)] });
    }
    out[v.name] = list;
  }
  return out;
}

test.before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-tspnet-'));
  await synthesizeDataset({ out: path.join(root, 'data'), dim: D, seed: 3, videos: 24, knobs: CLEAN });
  ds = loadDataset(path.join(root, 'data'), loadConfig('thumos14', { featureDim: D }));
  files = { train: path.join(root, 'p_train.json'), test: path.join(root, 'p_test.json') };
  fs.writeFileSync(files.train, JSON.stringify({ results: makeProposals(ds.train, 1) }));
  fs.writeFileSync(files.test, JSON.stringify({ results: makeProposals(ds.test, 2) }));
});

test.after.always(() => fs.rmSync(root, { recursive: true, force: true }));

const metrics = (out: string): TspNetMetricsLine[] => fs.readFileSync(tspnetPaths(out).metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

// small steps of every kind: batches of 4, a test every 4, a point update every 3, a cap of 6 proposals
// (the synthetic videos have 10-20: the sampling path, labels following their proposals)
const CFG = { iterations: 12, testEvery: 4, updateEvery: 3, checkpointEvery: 2, batchSize: 4, maxProposals: 6, lr: 1e-3, seed: 5, updateThreshold: 0.5 };

test.serial('an interrupted run resumes to exactly the state of an uninterrupted one', async (t) => {
  const opts = { dataset: ds, proposalsTrain: files.train, proposalsTest: files.test, config: CFG, quiet: true, log: () => {} };
  const full = await train({ ...opts, out: path.join(root, 'full') });
  t.false(full.interrupted);
  t.is(full.iteration, 12);
  const out = path.join(root, 'cut');
  const signal = { stop: false };
  // stop after iteration 7: after a point update (6), between checkpoints and tests
  const r1 = await train({ ...opts, out, signal, onIteration: (it) => (signal.stop = it === 7) });
  t.true(r1.interrupted);
  t.is(r1.iteration, 7);
  const r2 = await train({ ...opts, out, resume: true });
  t.is(r2.iteration, 12);
  const a = loadSafetensors(tspnetPaths(path.join(root, 'full')).last);
  const b = loadSafetensors(tspnetPaths(out).last);
  for (const [k, v] of a.tensors) t.deepEqual(v.data, b.tensors.get(k)!.data, k);
  const state = (f: typeof a) => JSON.parse(f.metadata.state).extra;
  t.deepEqual(state(a).points, state(b).points, 'moved points');
  t.true(state(a).updates === 4, 'four point updates in 12 iterations');
  const strip = (m: TspNetMetricsLine[]) => m.map(({ elapsed, ...rest }) => rest);
  t.deepEqual(strip(metrics(out)), strip(metrics(path.join(root, 'full'))));
  t.is(metrics(out).length, 3);
  // the names are the reference's TSPNet_Model's
  const names = [...loadSafetensors(tspnetPaths(out).best).tensors.keys()].sort();
  t.true(names.includes('prop_backbone.prop_fusion.0.weight') && names.includes('prop_backbone.prop_completeness.2.bias') && names.includes('prop_backbone.prop_classifier.2.weight'));
  t.is(names.length, 14);
  // a trained run detects on new features with given proposals
  const model = loadTspNet(out);
  const v = ds.test[0];
  const r = detect(model, { data: v.features, shape: [v.T, D] }, { name: v.name, proposals: makeProposals([v], 9)[v.name] });
  t.true(r.detections.length > 0 && r.detections.every((d) => d.segment[1] >= d.segment[0] && ds.classNames.includes(d.label)));
  t.throws(() => detect(model, { data: v.features, shape: [v.T, D] }), { message: /pass the new video's base proposals/ });
  model.dispose();
});

test.serial('base proposals from an HR-Pro run folder: stage-1 candidates and stage-2 detections, train and test', async (t) => {
  const run = path.join(root, 'hrpro');
  await runHrPro({ dataset: ds, out: run, stage1: { iterations: 4, testEvery: 4, batchSize: 4, lr: 1e-3 }, stage2: { epochs: 1, batchSize: 4 }, quiet: true, log: () => {} });
  for (const stage of [1, 2] as const) {
    const out = path.join(root, `on-hrpro-${stage}`);
    const r = await train({ dataset: ds, out, base: run, baseStage: stage, config: { iterations: 2, testEvery: 2, batchSize: 4 }, quiet: true, log: () => {} });
    t.false(r.interrupted);
    const p = tspnetPaths(out);
    for (const [file, videos] of [[p.proposalsTrain, ds.train], [p.proposalsTest, ds.test]] as const) {
      const j = JSON.parse(fs.readFileSync(file, 'utf8'));
      t.is(j.units, 'seconds');
      t.deepEqual(Object.keys(j.results).sort(), videos.map((v) => v.name).sort(), `${file}: every video`);
      // checked as a user's file would be: inside the video, not reversed, known labels
      t.notThrows(() => readBaseProposals(file, videos, ds.classNames, ds.config));
    }
    const cfg = JSON.parse(fs.readFileSync(p.config, 'utf8'));
    t.is(cfg.base.stage, stage);
    // pstal detect's path: the base run's proposals for a new video, then the plug-in
    const model = loadTspNet(out);
    const v = ds.test[1];
    const d = detect(model, { data: v.features, shape: [v.T, D] }, { name: v.name });
    t.true(d.proposals > 0 && d.scores !== undefined);
    model.dispose();
  }
});

// ----------------------------------------------------------------------------------------------
// bad proposals files: every error names the file
// ----------------------------------------------------------------------------------------------

function bad(t: import('ava').ExecutionContext, edit: (r: Record<string, BaseProposal[]>) => void, message: RegExp): void {
  const results = JSON.parse(fs.readFileSync(files.train, 'utf8')).results;
  edit(results);
  const file = path.join(root, `bad-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify({ results }));
  const e = t.throws(() => readBaseProposals(file, ds.train, ds.classNames, ds.config));
  t.true(e!.message.startsWith(file), e!.message);
  t.regex(e!.message, message);
}

test('a proposals file missing videos of the split', (t) => bad(t, (r) => delete r[ds.train[2].name], /no proposals for 1 video\(s\) of the split \(video/));
test('a reversed segment', (t) => bad(t, (r) => (r[ds.train[0].name][1].segment = [5, 4]), /\[1\]: segment \[5, 4\] is reversed/));
test('a segment outside the video', (t) => bad(t, (r) => (r[ds.train[0].name][0].segment = [-2, 3]), /lies outside the video/));
test('a segment past the end of the video', (t) => bad(t, (r) => (r[ds.train[0].name][0].segment = [1, 1e5]), /lies outside the video/));
test('a label unknown to the dataset', (t) => bad(t, (r) => (r[ds.train[1].name][0].label = 'Juggling'), /label 'Juggling' is not a class of the dataset/));
test('an empty proposal list', (t) => bad(t, (r) => (r[ds.train[3].name] = []), /is an empty proposal list/));
test('a segment that is not two numbers', (t) => bad(t, (r) => ((r[ds.train[3].name][0] as unknown as { segment: unknown }).segment = ['1', 2]), /segment must be \[start, end\]/));
test('not an ActivityNet results file', (t) => {
  const file = path.join(root, 'not-results.json');
  fs.writeFileSync(file, JSON.stringify({ database: {} }));
  t.throws(() => readBaseProposals(file, ds.train, ds.classNames, ds.config), { message: new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected \\{"results"`) });
});

// ----------------------------------------------------------------------------------------------
// units, duplicates, labels, the point update
// ----------------------------------------------------------------------------------------------

test("seconds to snippets: round(x * 25 / 16, 2) with Python's rounding; duplicates once unless kept", (t) => {
  t.is(pyRound(0.72 * 1.5625, 2), 1.12); // 1.125 exactly: ties to even
  t.is(pyRound(2.675, 2), 2.67); // 2.67499999... in binary
  t.is(pyRound(1.0051, 2), 1.01);
  const list: BaseProposal[] = [{ segment: [0.72, 1.6], label: 'a' }, { segment: [0.72, 1.6], label: 'b' }, { segment: [2, 3] }];
  t.deepEqual([...toSnippets(list, 1.5625, false).snippets], [1.12, 2.5, 3.12, 4.69]); // 3.125: a tie, to even
  t.deepEqual([...toSnippets(list, 1.5625, true).snippets], [1.12, 2.5, 1.12, 2.5, 3.12, 4.69]);
});

test('labels: points strictly inside, multi-hot, the first point in file order sets the center target', (t) => {
  const props = Float64Array.from([0, 10, 2, 4, 5, 9, 4, 6]);
  const pts: TspPoint[] = [
    { classIndex: 1, original: 5, current: 5 },
    { classIndex: 0, original: 3, current: 3 },
  ];
  const l = proposalLabels(props, pts, 3, 0.4);
  // [0, 10] holds both points, [2, 4] the class-0 one, [5, 9] none (5 is its edge), [4, 6] the class-1 one
  t.deepEqual([...l.label], [1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]);
  t.deepEqual([...l.pointId], [0, 1, -1, 0]);
  t.deepEqual([...l.center], [1, 1, Math.fround(0.4), 1]);
  const off = proposalLabels(Float64Array.from([4, 8]), pts, 3, 0.4); // the point at 5: w = 0.25
  t.is(off.center[0], 0.5);
});

test("point update: the paper's moves a point to the weighted center and stays there; the reference's oscillates", (t) => {
  // two confident proposals holding the point at 4, centers 6 and 7 (equal weights): 6.5
  const props = Float64Array.from([3, 9, 2, 12]);
  const z = Float32Array.from([0.9, 0.9]);
  const ours: TspPoint[] = [{ classIndex: 0, original: 4, current: 4 }];
  const theirs: TspPoint[] = [{ classIndex: 0, original: 4, current: 4 }];
  const ids = (pts: TspPoint[]) => proposalLabels(props, pts, 1, 0.4).pointId;
  const seqOurs: number[] = [];
  const seqTheirs: number[] = [];
  for (let k = 0; k < 3; k++) {
    ours[0].current = updatedPoints(ours, props, ids(ours), z, 0.8, false)[0];
    theirs[0].current = updatedPoints(theirs, props, ids(theirs), z, 0.8, true)[0];
    seqOurs.push(ours[0].current);
    seqTheirs.push(theirs[0].current);
  }
  t.deepEqual(seqOurs, [6.5, 6.5, 6.5]);
  // original 4 + (6.5 - current): 6.5, then 4, then 6.5
  t.deepEqual(seqTheirs.map((x) => Math.round(x * 1e4) / 1e4), [6.5, 4, 6.5]);
  // no confident proposal: ours stays, the reference's goes back to the annotation
  const low = Float32Array.from([0.5, 0.5]);
  t.is(updatedPoints([{ classIndex: 0, original: 4, current: 6 }], props, Int32Array.from([0, 0]), low, 0.8, false)[0], 6);
  t.is(updatedPoints([{ classIndex: 0, original: 4, current: 6 }], props, Int32Array.from([0, 0]), low, 0.8, true)[0], 4);
});

test("point update: unequal center scores weigh the centers (the paper's weighted mean, by hand)", (t) => {
  // three proposals of the point at 4 (its ids given): centers 6, 10 and 2, scores 0.6, 0.9, 0.3.
  // Threshold 0.5 keeps the first two: (0.6 x 6 + 0.9 x 10) / (0.6 + 0.9) = (3.6 + 9) / 1.5 = 8.4.
  // An unweighted mean would give (6 + 10) / 2 = 8; the third proposal, counted, would pull it down.
  const props = Float64Array.from([3, 9, 8, 12, 0, 4]);
  const z = Float32Array.from([0.6, 0.9, 0.3]);
  const ids = Int32Array.from([0, 0, 0]);
  const got = updatedPoints([{ classIndex: 0, original: 4, current: 4 }], props, ids, z, 0.5, false)[0];
  // the scores are float32 (0.6 and 0.9 are not exact): 1e-6 covers that rounding, not the 0.4 gap
  t.true(Math.abs(got - 8.4) < 1e-6, `moved to ${got}, expected 8.4`);
  // from another current position the paper's update lands at the same weighted center
  t.true(Math.abs(updatedPoints([{ classIndex: 0, original: 4, current: 5 }], props, ids, z, 0.5, false)[0] - 8.4) < 1e-6);
  // the reference's: original + sum of (center - current) x score / sum of scores
  // from current 5: 4 + ((6 - 5) x 0.6 + (10 - 5) x 0.9) / 1.5 = 4 + 5.1 / 1.5 = 7.4
  const ref = updatedPoints([{ classIndex: 0, original: 4, current: 5 }], props, ids, z, 0.5, true)[0];
  t.true(Math.abs(ref - 7.4) < 1e-5, `reference update to ${ref}, expected 7.4`);
});

test('a capped video trains on a random subset of its proposals, each with its own labels', (t) => {
  const v = ds.train.find((x) => x.points.length > 0)!;
  const list = makeProposals([v], 4)[v.name];
  const p = toSnippets(list, 25 / 16, false);
  const pts: TspPoint[] = v.points.map((q) => ({ classIndex: q.classIndex, original: (q.frame * 25) / (v.fps * 16), current: (q.frame * 25) / (v.fps * 16) }));
  const C = ds.classNames.length;
  const all = proposalLabels(p.snippets, pts, C, 0.4);
  const M = p.snippets.length / 2;
  const idx = sample(M, 5, new Rng(1));
  t.is(idx.length, 5);
  t.true(idx.every((m, i) => m >= 0 && m < M && (i === 0 || m > idx[i - 1])));
  const s = subset(p, all, idx, C);
  const direct = proposalLabels(Float64Array.from(idx.flatMap((m) => [p.snippets[2 * m], p.snippets[2 * m + 1]])), pts, C, 0.4);
  t.deepEqual([...s.labels.label], [...direct.label]);
  t.deepEqual([...s.labels.center], [...direct.center]);
  t.deepEqual([...s.props], idx.flatMap((m) => [p.snippets32[2 * m], p.snippets32[2 * m + 1]]));
});

test.serial('it learns the synthetic task: average mAP(0.1:0.7) above the measured floor', async (t) => {
  // 100 videos of D = 32 (24 of D = 16 are too few to learn 20 classes from: measured ~0%). lr 1e-3:
  // the reference's 5e-5 is for D = 2048 and barely moves a D = 32 model in a test's budget.
  // Measured: 2.9% at iteration 50 (the untrained level), 25.1% best at 400.
  const data = path.join(root, 'learn-data');
  await synthesizeDataset({ out: data, dim: 32, seed: 3, videos: 100, knobs: CLEAN });
  const big = loadDataset(data, loadConfig('thumos14', { featureDim: 32 }));
  const pt = path.join(root, 'learn-train.json');
  const pe = path.join(root, 'learn-test.json');
  const jitter = (videos: Dataset['train'], seed: number) => {
    const rng = new Rng(seed);
    return Object.fromEntries(
      videos.map((v) => {
        const end = v.T * 0.64;
        const list: BaseProposal[] = [];
        for (const g of v.gt)
          for (let k = 0; k < 6; k++) {
            const s = Math.max(0, g.segment[0] + rng.normal());
            const e = Math.min(end, g.segment[1] + rng.normal());
            if (e - s > 0.3) list.push({ segment: [s, e] });
          }
        for (let k = 0; k < 10; k++) {
          const s = rng.uniform() * (end - 1);
          list.push({ segment: [s, Math.min(end, s + 0.5 + rng.uniform() * 4)] });
        }
        return [v.name, list];
      }),
    );
  };
  fs.writeFileSync(pt, JSON.stringify({ results: jitter(big.train, 1) }));
  fs.writeFileSync(pe, JSON.stringify({ results: jitter(big.test, 2) }));
  const out = path.join(root, 'learn');
  const r = await train({ dataset: big, out, proposalsTrain: pt, proposalsTest: pe, config: { iterations: 400, testEvery: 50, batchSize: 4, lr: 1e-3, seed: 1 }, quiet: true, log: () => {} });
  const m = metrics(out);
  t.log(`avg mAP by test: ${m.map((l) => (100 * l.test!.average).toFixed(1)).join(', ')}; best ${(100 * r.bestMap).toFixed(1)} at ${r.bestIteration}`);
  t.true(r.bestMap > 0.15, `best average mAP ${r.bestMap}`);
  t.true(m[0].test!.average < r.bestMap / 2, 'mAP improves with training');
  t.true(m[m.length - 1].loss < m[0].loss, 'the loss goes down');
});
