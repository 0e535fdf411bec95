/**
 * Synthetic datasets (lib/data/synth.ts): the standard layout of SPEC §1, determinism per
 * (seed, video), the copy of real annotations, and realism checks on the features: no single
 * dimension or the norm separates action from background, a class-mean classifier does, and
 * neighbouring snippets are correlated like I3D features.
 */
import test from 'ava';
import { sharedDataDir, withSharedData } from '../helpers/shared-data';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SYNTH_DEFAULTS, THUMOS14_CLASSES, actionProfile, snippetCount, synthesizeDataset } from '../../lib/data/synth';
import { readNpy } from '../../lib/data/npy';

const THUMOS = path.join(sharedDataDir() ?? '', 'THUMOS14');

function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `pstal-synth-${tag}-`));
}

interface Gt {
  database: Record<string, { subset: string; duration: number; fps: number; annotations: { label: string; segment: [number, number] }[] }>;
}

const lines = (f: string): string[] => fs.readFileSync(f, 'utf8').split('\n').filter((s) => s.trim().length);

// one small invented dataset shared by the layout and realism tests
const small = (async () => {
  const out = tmpDir('small');
  const summary = await synthesizeDataset({ out, dim: 64, seed: 3, videos: 40, knobs: { durationScale: 0.6 } });
  return { out, summary };
})();

test('invented dataset: complete layout, csv header, gt json shape, T per video', async (t) => {
  const { out, summary } = await small;
  t.is(summary.train, 20);
  t.is(summary.test, 20);
  t.is(summary.dim, 64);
  t.deepEqual(summary.classes, THUMOS14_CLASSES);
  for (const f of ['gt_full.json', 'split_train.txt', 'split_test.txt', 'Ambiguous_test.txt', 'point_labels/point_gaussian.csv'])
    t.true(fs.existsSync(path.join(out, f)), f);
  const gt = JSON.parse(fs.readFileSync(path.join(out, 'gt_full.json'), 'utf8')) as Gt;
  const train = lines(path.join(out, 'split_train.txt'));
  const test_ = lines(path.join(out, 'split_test.txt'));
  t.is(train[0], 'video_validation_0000001');
  t.is(test_[19], 'video_test_0000020');
  let snippets = 0;
  let instances = 0;
  for (const [split, names, subset] of [['train', train, 'Validation'], ['test', test_, 'Test']] as const)
    for (const name of names) {
      const v = gt.database[name];
      t.is(v.subset, subset);
      t.is(v.fps, 30);
      t.true(v.duration > 0);
      t.true(v.annotations.length >= 1 && v.annotations.length <= 30);
      const byClass = new Map<string, [number, number][]>();
      for (const a of v.annotations) {
        t.true(THUMOS14_CLASSES.includes(a.label));
        t.true(a.segment[0] >= 0 && a.segment[1] <= v.duration + 1e-9 && a.segment[1] > a.segment[0]);
        const list = byClass.get(a.label) ?? [];
        for (const [s, e] of list) t.false(a.segment[0] < e && a.segment[1] > s, `${name}: ${a.label} instances overlap`);
        list.push(a.segment);
        byClass.set(a.label, list);
        instances++;
      }
      t.true(byClass.size <= 2);
      const arr = readNpy(path.join(out, 'features', split, `${name}.npy`));
      t.deepEqual(arr.shape, [Math.floor((v.duration * 25) / 16), 64]);
      t.is(arr.shape[0], snippetCount(v.duration));
      for (const x of arr.data) if (!(x >= 0 && Number.isFinite(x))) return t.fail(`${name}: feature ${x} is negative or not finite`);
      snippets += arr.shape[0];
    }
  t.is(summary.snippets, snippets);
  // point labels: header, one row per training instance, the point inside its instance
  const csv = lines(path.join(out, 'point_labels', 'point_gaussian.csv'));
  t.is(csv[0], 'class,class_index,start_frame,stop_frame,video_id,point');
  const trainInstances = train.reduce((n, v) => n + gt.database[v].annotations.length, 0);
  t.is(csv.length - 1, trainInstances);
  for (const row of csv.slice(1)) {
    const [label, ci, s, e, video, p] = row.split(',');
    t.is(THUMOS14_CLASSES[+ci], label);
    t.true(train.includes(video));
    t.true(+s <= +p && +p <= +e, row);
  }
  for (const row of lines(path.join(out, 'Ambiguous_test.txt'))) t.regex(row, /^video_test_\d{7} {2}\d+\.\d \d+\.\d$/);
  t.true(instances > 40);
});

test('features are deterministic per (seed, video) whatever --videos; seeds differ', async (t) => {
  const { out } = await small;
  const other = tmpDir('det');
  // fewer videos, so the generation order and the set differ; same seed and knobs
  await synthesizeDataset({ out: other, dim: 64, seed: 3, videos: 6, knobs: { durationScale: 0.6 } });
  for (const [split, name] of [['train', 'video_validation_0000002'], ['test', 'video_test_0000003']]) {
    const a = readNpy(path.join(out, 'features', split, `${name}.npy`));
    const b = readNpy(path.join(other, 'features', split, `${name}.npy`));
    t.deepEqual(b.shape, a.shape);
    t.deepEqual(b.data, a.data);
  }
  const gtA = JSON.parse(fs.readFileSync(path.join(out, 'gt_full.json'), 'utf8')) as Gt;
  const gtB = JSON.parse(fs.readFileSync(path.join(other, 'gt_full.json'), 'utf8')) as Gt;
  t.deepEqual(gtB.database.video_test_0000001, gtA.database.video_test_0000001);
  const seed4 = tmpDir('seed4');
  await synthesizeDataset({ out: seed4, dim: 64, seed: 4, videos: 6, knobs: { durationScale: 0.6 } });
  const gtC = JSON.parse(fs.readFileSync(path.join(seed4, 'gt_full.json'), 'utf8')) as Gt;
  t.notDeepEqual(gtC.database.video_validation_0000001, gtB.database.video_validation_0000001);
  fs.rmSync(other, { recursive: true, force: true });
  fs.rmSync(seed4, { recursive: true, force: true });
});

test('native synth_features kernel matches the TypeScript one', async (t) => {
  const a = tmpDir('native');
  const b = tmpDir('js');
  const o = { dim: 48, seed: 7, videos: 4, knobs: { durationScale: 0.3 } };
  await synthesizeDataset({ out: a, ...o, kernel: 'native' });
  await synthesizeDataset({ out: b, ...o, kernel: 'js' });
  for (const f of fs.readdirSync(path.join(a, 'features', 'train'))) {
    const x = readNpy(path.join(a, 'features', 'train', f));
    const y = readNpy(path.join(b, 'features', 'train', f));
    t.deepEqual(x.shape, y.shape);
    let worst = 0;
    for (let i = 0; i < x.data.length; i++) worst = Math.max(worst, Math.abs(x.data[i] - y.data[i]) / (1 + Math.abs(y.data[i])));
    t.true(worst < 1e-4, `${f}: native and TypeScript differ by ${worst}`);
  }
  fs.rmSync(a, { recursive: true, force: true });
  fs.rmSync(b, { recursive: true, force: true });
});

withSharedData(test)('same annotations, different seed: different features', async (t) => {
  const a = tmpDir('sa');
  const b = tmpDir('sb');
  await synthesizeDataset({ out: a, annotations: THUMOS, dim: 8, seed: 0, videos: 1 });
  await synthesizeDataset({ out: b, annotations: THUMOS, dim: 8, seed: 1, videos: 1 });
  const name = lines(path.join(THUMOS, 'split_train.txt'))[0];
  const x = readNpy(path.join(a, 'features', 'train', `${name}.npy`));
  const y = readNpy(path.join(b, 'features', 'train', `${name}.npy`));
  t.deepEqual(x.shape, y.shape);
  t.notDeepEqual(x.data, y.data);
  fs.rmSync(a, { recursive: true, force: true });
  fs.rmSync(b, { recursive: true, force: true });
});

withSharedData(test)('with THUMOS14 annotations: files copied as they are, names and counts match', async (t) => {
  const out = tmpDir('thumos');
  const s = await synthesizeDataset({ out, annotations: THUMOS, dim: 16, knobs: {} });
  const train = lines(path.join(THUMOS, 'split_train.txt'));
  const test_ = lines(path.join(THUMOS, 'split_test.txt'));
  t.is(s.train, train.length);
  t.is(s.test, test_.length);
  t.is(s.classes.length, 20);
  t.deepEqual(s.classes, THUMOS14_CLASSES); // label_id order
  for (const f of ['gt_full.json', 'split_train.txt', 'split_test.txt', 'Ambiguous_test.txt', 'point_labels/point_gaussian.csv'])
    t.deepEqual(fs.readFileSync(path.join(out, f)), fs.readFileSync(path.join(THUMOS, f)), f);
  t.deepEqual(fs.readdirSync(path.join(out, 'features', 'train')).sort(), train.map((n) => `${n}.npy`).sort());
  t.deepEqual(fs.readdirSync(path.join(out, 'features', 'test')).sort(), test_.map((n) => `${n}.npy`).sort());
  const gt = JSON.parse(fs.readFileSync(path.join(THUMOS, 'gt_full.json'), 'utf8')) as Gt;
  const x = readNpy(path.join(out, 'features', 'test', `${test_[0]}.npy`));
  t.deepEqual(x.shape, [Math.floor((gt.database[test_[0]].duration * 25) / 16), 16]);
  // --videos with annotations keeps the first N of each split and lists only those
  const few = tmpDir('few');
  const f = await synthesizeDataset({ out: few, annotations: THUMOS, dim: 4, videos: 3 });
  t.is(f.train + f.test, 6);
  t.deepEqual(lines(path.join(few, 'split_train.txt')), train.slice(0, 3));
  fs.rmSync(out, { recursive: true, force: true });
  fs.rmSync(few, { recursive: true, force: true });
});

test('bad input: clear errors', async (t) => {
  const out = tmpDir('bad');
  const noGt = tmpDir('nogt');
  fs.writeFileSync(path.join(noGt, 'gt.json'), '{}');
  await t.throwsAsync(synthesizeDataset({ out, annotations: noGt }), { message: /gt_full\.json does not exist.*ActivityNet/ });
  await t.throwsAsync(synthesizeDataset({ out, dim: 0 }), { message: /dim must be a positive integer/ });
  await t.throwsAsync(synthesizeDataset({ out, videos: 1.5 }), { message: /videos must be a positive integer/ });
  await t.throwsAsync(synthesizeDataset({ out, knobs: { nope: 1 } as never }), { message: /unknown knob 'nope'/ });
  await t.throwsAsync(synthesizeDataset({ out, knobs: { noiseAr: 1 } }), { message: /noiseAr/ });
  fs.rmSync(out, { recursive: true, force: true });
  fs.rmSync(noGt, { recursive: true, force: true });
});

test('action profile: strongest mid-instance, fading toward the boundaries', (t) => {
  t.is(actionProfile(0.5, 0.7, 0.3), 1);
  t.true(Math.abs(actionProfile(0, 0.7, 0.3) - 0.3) < 1e-9);
  t.true(actionProfile(0.1, 0.7, 0.3) < actionProfile(0.3, 0.7, 0.3));
  t.is(actionProfile(0.05, 0, 0.3), 1);
  t.true(SYNTH_DEFAULTS.edgeFade > 0 && SYNTH_DEFAULTS.edgeFade < 1);
});

// ---- realism ---------------------------------------------------------------------------------

interface Snippets {
  X: Float32Array[];
  action: boolean[];
  cls: number[];
  split: string[];
  video: string[];
}

function loadSnippets(out: string): Snippets {
  const gt = JSON.parse(fs.readFileSync(path.join(out, 'gt_full.json'), 'utf8')) as Gt;
  const r: Snippets = { X: [], action: [], cls: [], split: [], video: [] };
  for (const split of ['train', 'test'])
    for (const name of lines(path.join(out, `split_${split}.txt`))) {
      const v = gt.database[name];
      const a = readNpy(path.join(out, 'features', split, `${name}.npy`));
      const [T, D] = a.shape;
      for (let t = 0; t < T; t++) {
        const time = ((t + 0.5) * 16) / 25;
        const inst = v.annotations.find((x) => time >= x.segment[0] && time <= x.segment[1]);
        r.X.push(a.data.subarray(t * D, (t + 1) * D));
        r.action.push(!!inst);
        r.cls.push(inst ? THUMOS14_CLASSES.indexOf(inst.label) : -1);
        r.split.push(split);
        r.video.push(name);
      }
    }
  return r;
}

/** Best balanced accuracy of a threshold (either direction) on one score per snippet. */
function bestBalancedAccuracy(score: number[], positive: boolean[]): number {
  const idx = score.map((_, i) => i).sort((a, b) => score[a] - score[b]);
  const P = positive.filter(Boolean).length;
  const N = positive.length - P;
  let best = 0.5;
  let pBelow = 0;
  let nBelow = 0;
  for (let i = 0; i < idx.length; i++) {
    if (positive[idx[i]]) pBelow++;
    else nBelow++;
    if (i + 1 < idx.length && score[idx[i + 1]] === score[idx[i]]) continue;
    // "positive above the threshold" and the reverse
    const ba = ((P - pBelow) / P + nBelow / N) / 2;
    best = Math.max(best, ba, 1 - ba);
  }
  return best;
}

const realism = (async () => {
  const { out } = await small;
  const s = loadSnippets(out);
  const D = s.X[0].length;
  let bestDim = 0;
  for (let d = 0; d < D; d++) bestDim = Math.max(bestDim, bestBalancedAccuracy(s.X.map((x) => x[d]), s.action));
  const norm = bestBalancedAccuracy(
    s.X.map((x) => Math.hypot(...x)),
    s.action,
  );
  // nearest class mean (cosine, features centred on the training mean) on test action snippets
  const mean = new Float64Array(D);
  let nTrain = 0;
  s.X.forEach((x, i) => {
    if (s.split[i] !== 'train') return;
    nTrain++;
    for (let d = 0; d < D; d++) mean[d] += x[d];
  });
  for (let d = 0; d < D; d++) mean[d] /= nTrain;
  const C = THUMOS14_CLASSES.length;
  const cm = Array.from({ length: C }, () => new Float64Array(D));
  const cn = new Array(C).fill(0);
  s.X.forEach((x, i) => {
    if (s.split[i] !== 'train' || s.cls[i] < 0) return;
    cn[s.cls[i]]++;
    for (let d = 0; d < D; d++) cm[s.cls[i]][d] += x[d] - mean[d];
  });
  let right = 0;
  let total = 0;
  s.X.forEach((x, i) => {
    if (s.split[i] !== 'test' || s.cls[i] < 0 || cn[s.cls[i]] === 0) return;
    let best = -1;
    let bestScore = -Infinity;
    for (let c = 0; c < C; c++) {
      if (!cn[c]) continue;
      let dot = 0;
      let nn = 0;
      for (let d = 0; d < D; d++) {
        dot += (x[d] - mean[d]) * cm[c][d];
        nn += cm[c][d] * cm[c][d];
      }
      const sc = dot / Math.sqrt(nn);
      if (sc > bestScore) [bestScore, best] = [sc, c];
    }
    total++;
    if (best === s.cls[i]) right++;
  });
  const classAcc = right / total;
  const seenClasses = cn.filter((n) => n > 0).length;
  // lag-1 autocorrelation per dimension within videos, averaged over dimensions
  let ac = 0;
  for (let d = 0; d < D; d++) {
    let m = 0;
    for (const x of s.X) m += x[d];
    m /= s.X.length;
    let num = 0;
    let den = 0;
    for (let i = 0; i < s.X.length; i++) {
      const a = s.X[i][d] - m;
      den += a * a;
      if (i + 1 < s.X.length && s.video[i + 1] === s.video[i]) num += a * (s.X[i + 1][d] - m);
    }
    ac += num / den / D;
  }
  const actionShare = s.action.filter(Boolean).length / s.action.length;
  return { bestDim, norm, classAcc, seenClasses, ac, actionShare, snippets: s.X.length };
})();

test('realism: no single dimension nor the norm separates action from background', async (t) => {
  const r = await realism;
  t.log(`best single-dimension balanced accuracy ${r.bestDim.toFixed(3)}, norm ${r.norm.toFixed(3)}, action share ${r.actionShare.toFixed(3)}, ${r.snippets} snippets`);
  t.true(r.actionShare > 0.1 && r.actionShare < 0.6);
  t.true(r.bestDim < 0.75, `a single dimension separates action: ${r.bestDim}`);
  t.true(r.norm < 0.72, `the norm separates action: ${r.norm}`);
});

test('realism: a class-mean classifier does clearly better than chance', async (t) => {
  const r = await realism;
  const chance = 1 / r.seenClasses;
  t.log(`nearest class mean accuracy ${r.classAcc.toFixed(3)} on test action snippets, chance ${chance.toFixed(3)}`);
  t.true(r.classAcc > Math.max(0.3, 4 * chance), `class accuracy ${r.classAcc}`);
  t.true(r.classAcc < 0.995, 'the classes should not be trivially separable');
});

test('realism: neighbouring snippets are correlated like I3D features', async (t) => {
  const r = await realism;
  t.log(`lag-1 autocorrelation ${r.ac.toFixed(3)}`);
  t.true(r.ac > 0.7 && r.ac < 0.95, `lag-1 autocorrelation ${r.ac}`);
});

test.after.always(async () => {
  const { out } = await small;
  fs.rmSync(out, { recursive: true, force: true });
});
