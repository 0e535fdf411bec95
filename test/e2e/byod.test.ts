/**
 * Bring your own dataset: `pstal points` (simulated point labels: the distributions' moments, the
 * loader reads the file back), `pstal check` and the same checks before `pstal run` / `pstal train`
 * (each bad-dataset case gives the same clear message from both), --dim from the data, --version
 * and the examples in --help. Small data: the GTEA annotations with synthetic D = 16 features.
 */
import avaTest from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig, loadDataset, readNpy, writeNpy, synthesizeDataset } from '../../lib/data';
import { simulatePoints, pointsCsv, SimulatedPoint } from '../../lib/data/points';
import { checkDataset } from '../../lib/data/check';

import { sharedDataDir, withSharedData } from '../helpers/shared-data';

const test = withSharedData(avaTest);
const DATA = sharedDataDir() ?? '';
const bin = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');
const pstal = (args: string[], cwd = os.tmpdir()) => spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, PSTAL_TS: '1', PSTAL_NUM_THREADS: '1' } });

const roots: string[] = [];
test.after.always(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});
function tmp(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  roots.push(d);
  return d;
}

let base = '';
test.before(async () => {
  base = path.join(tmp('pstal-byod-'), 'gtea16');
  await synthesizeDataset({ out: base, annotations: path.join(DATA, 'GTEA'), dim: 16, seed: 0 });
});

/** A copy of the synthesized GTEA folder to break. */
function copy(): string {
  const d = path.join(tmp('pstal-byod-case-'), 'data');
  fs.cpSync(base, d, { recursive: true });
  return d;
}

// ---- points ------------------------------------------------------------------------------------------

/** A gt_full.json of one long video holding n instances of `len` frames at 25 fps, at fractional positions. */
function bigGt(dir: string, n: number, len: number): string {
  const fps = 25;
  const annotations = Array.from({ length: n }, (_, i) => {
    const s = (i * (len + 10) + 0.37 * (i % 7)) / fps;
    return { label: i % 3 ? 'a' : 'b', segment: [s, s + len / fps] };
  });
  const duration = (n * (len + 10) + 20) / fps;
  const file = path.join(dir, 'gt_full.json');
  fs.writeFileSync(file, JSON.stringify({ database: { v1: { subset: 'train', duration, fps, annotations }, v2: { subset: 'test', duration: 10, fps, annotations: [{ label: 'a', segment: [1, 2] }] } } }));
  return file;
}

const stats = (xs: number[]): { mean: number; sd: number; variance: number } => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  return { mean, sd: Math.sqrt(variance), variance };
};
const inside = (p: SimulatedPoint): boolean => p.point >= Math.ceil(p.center - (p.stopFrame - p.startFrame) / 2 - 0.5) && p.point >= p.startFrame && p.point <= p.stopFrame;

test('points: gaussian around the center with the chosen sigma, every point inside its instance', (t) => {
  const gt = bigGt(tmp('pstal-points-'), 4000, 100);
  const r = simulatePoints(gt, { distribution: 'gaussian', sigma: 6, seed: 3, subsets: ['train'] });
  t.is(r.points.length, 4000);
  t.is(r.videos, 1);
  const off = r.points.map((p) => p.point - p.center);
  const s = stats(off);
  t.true(Math.abs(s.mean) < 0.3, `mean offset ${s.mean}`); // sd/sqrt(n) = 0.095
  t.true(Math.abs(s.sd - Math.sqrt(36 + 1 / 12)) < 0.25, `sd ${s.sd}`); // rounding adds 1/12
  t.true(r.points.every(inside));
  t.true(r.points.every((p) => Number.isInteger(p.point)));
  // the default sigma: 1 frame (measured on the released THUMOS14 labels)
  const d = stats(simulatePoints(gt, { seed: 3, subsets: ['train'] }).points.map((p) => p.point - p.center));
  t.true(Math.abs(d.sd - Math.sqrt(1 + 1 / 12)) < 0.08, `default sd ${d.sd}`);
  // a huge sigma is clipped to the instance
  const wide = simulatePoints(gt, { sigmaFraction: 2, seed: 1, subsets: ['train'] }).points;
  t.true(wide.every(inside));
  t.true(wide.filter((p) => p.point === p.startFrame || p.point === p.stopFrame).length > 1000);
  // deterministic per seed; another seed draws other frames
  t.deepEqual(simulatePoints(gt, { sigma: 6, seed: 3, subsets: ['train'] }).points, r.points);
  t.notDeepEqual(simulatePoints(gt, { sigma: 6, seed: 4, subsets: ['train'] }).points.map((p) => p.point), r.points.map((p) => p.point));
});

test('points: uniform has the variance of a discrete uniform over the instance; center is exact', (t) => {
  const gt = bigGt(tmp('pstal-points-'), 4000, 100);
  const u = simulatePoints(gt, { distribution: 'uniform', seed: 0, subsets: ['train'] }).points;
  t.true(u.every(inside));
  // frames ceil(s)..floor(e): 100 or 101 integers a instance
  const rel = u.map((p) => p.point - Math.ceil(p.center - 50));
  const s = stats(rel);
  const n = 100.5;
  t.true(Math.abs(s.variance / ((n * n - 1) / 12) - 1) < 0.06, `variance ${s.variance} vs ${(n * n - 1) / 12}`);
  t.true(Math.abs(s.mean - 50) < 1.5, `mean ${s.mean}`);
  const c = simulatePoints(gt, { distribution: 'center', subsets: ['train'] }).points;
  t.true(c.every((p) => p.point === Math.round(p.center)));
  // both subsets by default; an unknown subset is an error naming the file's subsets
  t.is(simulatePoints(gt, { distribution: 'center' }).points.length, 4001);
  t.throws(() => simulatePoints(gt, { subsets: ['Validation'] }), { message: /has no subset "Validation" \(its subsets: train, test\)/ });
});

test('points: `pstal points` writes the csv the dataset loader reads back', (t) => {
  const d = copy();
  const csv = path.join(d, 'point_labels', 'point_gaussian.csv');
  fs.rmSync(csv);
  const r = pstal(['points', '--gt', path.join(d, 'gt_full.json'), '--out', csv, '--seed', '5', '--subset', 'training']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /points: 367 point labels \(gaussian, sigma 1 frame\(s\), seed 5\) for 21 videos \(21 training\), 7 classes/);
  const lines = fs.readFileSync(csv, 'utf8').trim().split('\n');
  t.is(lines[0], 'class,class_index,start_frame,stop_frame,video_id,point');
  t.is(lines.length, 368);
  const ds = loadDataset(d, loadConfig('gtea', { featureDim: 16 }));
  t.is(ds.train.reduce((n, v) => n + v.points.length, 0) > 300, true);
  t.deepEqual(ds.skipped.messages, []);
  // every point in its video, at the video's fps, on a snippet of the instance's class
  const gt = JSON.parse(fs.readFileSync(path.join(d, 'gt_full.json'), 'utf8')).database;
  for (const v of ds.train)
    for (const p of v.points) {
      t.true(p.time <= v.duration);
      const c = ds.classNames[p.classIndex];
      t.true(gt[v.name].annotations.some((a: { label: string; segment: number[] }) => a.label === c && p.time >= a.segment[0] - 1 / v.fps && p.time <= a.segment[1] + 1 / v.fps));
    }
  // the same seed writes the same file
  const again = path.join(d, 'again.csv');
  t.is(pstal(['points', '--gt', path.join(d, 'gt_full.json'), '--out', again, '--seed', '5', '--subset', 'training']).status, 0);
  t.is(fs.readFileSync(again, 'utf8'), fs.readFileSync(csv, 'utf8'));
  t.is(pointsCsv([]), 'class,class_index,start_frame,stop_frame,video_id,point\n');
});

// ---- check, and the same checks before run --------------------------------------------------------------

test('check: a good dataset passes with a summary; its real-annotation quirks are warnings', (t) => {
  const r = pstal(['check', '--data', base, '--config', 'gtea']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /train \(subset "training"\): 21 videos listed, 21 with features, \d+ snippets, 367 ground-truth instances, 367 point labels/);
  t.regex(r.stdout, /test {2}\(subset "validation"\): 7 videos listed, 7 with features/);
  t.regex(r.stdout, /points per training instance: 1\.00/);
  t.regex(r.stdout, /features: D = 16/);
  t.regex(r.stdout, /take\s+97\s+36\s+97/);
  t.regex(r.stdout, /is ready for training/);
  // GTEA's gt_full.json has one segment ending 0.07 s past its video: a warning only
  t.regex(r.stderr, /warning: .*gt_full\.json: video "S3_CofHoney_C1": annotations\[19\]\.segment: .* is not inside the video/);
  t.is(pstal(['check', '--data', base, '--config', 'gtea', '--strict']).status, 1);
});

interface Case {
  name: string;
  breakIt(dir: string): void;
  message: RegExp;
}

const CASES: Case[] = [
  {
    name: 'a missing feature file',
    breakIt: (d) => fs.rmSync(path.join(d, 'features', 'test', 'S1_Tea_C1.npy')),
    message: /error: .*features[\\/]test[\\/]S1_Tea_C1\.npy: video "S1_Tea_C1": missing: the video is listed in split_test\.txt but has no features file/,
  },
  {
    name: 'a point outside its video',
    breakIt: (d) => fs.appendFileSync(path.join(d, 'point_labels', 'point_gaussian.csv'), 'take,10.0,20.0,S1_Cheese_C1,99999\n'),
    message: /error: .*point_gaussian\.csv:369: video "S1_Cheese_C1": point: frame 99999 is outside the video \(frames 0 to [\d.]+: [\d.]+ s at 15 fps\)/,
  },
  {
    name: 'an unknown class',
    breakIt: (d) => fs.appendFileSync(path.join(d, 'point_labels', 'point_gaussian.csv'), 'juggle,10.0,20.0,S1_Cheese_C1,15\n'),
    message: /error: .*point_gaussian\.csv:369: video "S1_Cheese_C1": class: "juggle" is not among the 7 classes \(close, open, pour, put, scoop, stir, take\)/,
  },
  {
    name: 'a reversed segment',
    breakIt: (d) => {
      const f = path.join(d, 'gt_full.json');
      const gt = JSON.parse(fs.readFileSync(f, 'utf8'));
      gt.database.S1_Cheese_C1.annotations[2].segment = [9, 3];
      fs.writeFileSync(f, JSON.stringify(gt));
    },
    message: /error: .*gt_full\.json: video "S1_Cheese_C1": annotations\[2\]\.segment: \[9, 3\] is reversed: its start is after its end/,
  },
  {
    name: 'features of the wrong width',
    breakIt: (d) => {
      const f = path.join(d, 'features', 'test', 'S2_Tea_C1.npy');
      const { shape } = readNpy(f);
      writeNpy(f, new Float32Array(shape[0] * 8), [shape[0], 8]);
    },
    message: /error: .*features[\\/]test[\\/]S2_Tea_C1\.npy: video "S2_Tea_C1": shape: feature width 8 does not match the width 16 of .*S1_Cheese_C1\.npy/,
  },
];

for (const c of CASES) {
  test(`check and run: ${c.name} is an error with the same message from both`, (t) => {
    const d = copy();
    c.breakIt(d);
    const lib = checkDataset(d, loadConfig('gtea'));
    t.true(lib.errors >= 1);
    const chk = pstal(['check', '--data', d, '--config', 'gtea']);
    t.is(chk.status, 1, chk.stdout + chk.stderr);
    t.regex(chk.stderr, c.message);
    t.regex(chk.stderr, /is not ready for training \(\d+ error\(s\)/);
    const out = path.join(path.dirname(d), 'run');
    const run = pstal(['run', '--data', d, '--config', 'gtea', '--out', out, '--iterations', '2', '--epochs', '1', '--quiet']);
    t.is(run.status, 1, run.stderr);
    t.regex(run.stderr, c.message);
    t.regex(run.stderr, /pstal run: the dataset .* has \d+ error\(s\) \(`pstal check --data .*` lists every problem; --no-check skips these checks\)/);
    t.notRegex(run.stderr, /stage 1:/); // stopped before training
    t.notRegex(run.stderr, /\n\s+at /); // no stack trace
    const train = pstal(['train', '--stage', '1', '--data', d, '--config', 'gtea', '--out', out, '--iterations', '2', '--quiet']);
    t.is(train.status, 1);
    t.regex(train.stderr, c.message);
  });
}

test('--dim: defaults to the data; an explicit --dim that disagrees is an error naming the file', (t) => {
  const out = path.join(tmp('pstal-dim-'), 'run');
  const r = pstal(['train', '--stage', '1', '--data', base, '--config', 'gtea', '--out', out, '--dim', '32', '--quiet']);
  t.is(r.status, 1);
  t.regex(r.stderr, /pstal train: .*features[\\/]train[\\/]S1_Cheese_C1\.npy: feature width 16 does not match --dim 32 \(leave --dim out to use the data's width\)/);
  const ok = pstal(['train', '--stage', '1', '--data', base, '--config', 'gtea', '--out', out, '--iterations', '1', '--test-every', '1', '--batch-size', '2', '--no-ranking', '--quiet']);
  t.is(ok.status, 0, ok.stderr);
  t.regex(ok.stderr, /D = 16/);
  t.is(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).featureDim, 16);
  t.is(JSON.parse(fs.readFileSync(path.join(out, 'dataset.json'), 'utf8')).featureDim, 16);
});

test('--version prints package.json\'s version; every command\'s --help has an example', (t) => {
  const v = pstal(['--version']);
  t.is(v.status, 0);
  t.is(v.stdout.split('\n')[0], JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')).version);
  for (const cmd of ['synth', 'points', 'check', 'train', 'run', 'detect', 'eval', 'report', 'demo']) {
    const h = pstal([cmd, '--help']);
    t.is(h.status, 0, cmd);
    t.regex(h.stdout, new RegExp(`usage: pstal ${cmd}`));
    t.regex(h.stdout, new RegExp(`examples?:\\n {2}pstal ${cmd} `), cmd);
  }
});

test('gt: ground truth from a point csv with start/stop frames (hand-computed), --holdout draws the test split', (t) => {
  const dir = tmp('pstal-gt-');
  fs.mkdirSync(path.join(dir, 'point_labels'));
  fs.writeFileSync(
    path.join(dir, 'point_labels', 'point_gaussian.csv'),
    'class,start_frame,stop_frame,video_id,point\nA,30,90,v1,60\nB,150,300,v1,200\nA,0,45,v2,20\nB,30,60,v3,45\nA,0.3,0.6,v6,0\n',
  );
  fs.writeFileSync(path.join(dir, 'split_train.txt'), 'v1\nv2\nv4\nv6\n');
  fs.writeFileSync(path.join(dir, 'split_test.txt'), 'v3\nv5\n');
  const out = path.join(dir, 'out');
  const r = pstal(['gt', '--annotations', dir, '--out', out, '--fps', '30', '--duration-margin', '0.2']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /left out 1 training and 1 test videos without a row/);
  // v6's only instance ends at 0.02 s (ActivityNet's degenerate [0.01, 0.02] s annotations): left out
  t.regex(r.stderr, /left out 1 videos whose instances all end before 1 s \(degenerate annotations\), e\.g\. v6/);
  const db = JSON.parse(fs.readFileSync(path.join(out, 'gt_full.json'), 'utf8')).database;
  t.deepEqual(Object.keys(db).sort(), ['v1', 'v2', 'v3']);
  // v1: segments [30, 90] / 30 = [1, 3] s and [5, 10] s; duration 10 s x 1.2
  t.deepEqual(db.v1.annotations, [{ label: 'A', segment: [1, 3] }, { label: 'B', segment: [5, 10] }]);
  t.is(db.v1.duration, 12);
  t.is(db.v1.subset, 'training');
  t.is(db.v3.subset, 'validation');
  t.deepEqual(db.v3.annotations, [{ label: "B", segment: [1, 2] }]);
  t.is(fs.readFileSync(path.join(out, 'split_test.txt'), 'utf8'), 'v3\n');
  // the point labels of the videos kept, no more (v6's row is left out with v6)
  t.is(fs.readFileSync(path.join(out, 'point_labels', 'point_gaussian.csv'), 'utf8'), 'class,start_frame,stop_frame,video_id,point\nA,30,90,v1,60\nB,150,300,v1,200\nA,0,45,v2,20\nB,30,60,v3,45\n');

  // the test split unlabelled (ActivityNet 1.3's case): refused without --holdout, drawn with it
  fs.writeFileSync(path.join(dir, 'split_test.txt'), 'v5\n');
  // (--force: out holds the first call's files)
  const refused = pstal(['gt', '--annotations', dir, '--out', out, '--force']);
  t.not(refused.status, 0);
  t.regex(refused.stderr, /split_test\.txt has a row in .*point_gaussian\.csv.*holdout/);
  const held = pstal(['gt', '--annotations', dir, '--out', out, '--holdout', '0.34', '--seed', '3', '--force']);
  t.is(held.status, 0, held.stderr);
  const train = fs.readFileSync(path.join(out, 'split_train.txt'), 'utf8').trim().split('\n');
  const testSplit = fs.readFileSync(path.join(out, 'split_test.txt'), 'utf8').trim().split('\n');
  t.is(testSplit.length, 1);
  t.deepEqual([...train, ...testSplit].sort(), ['v1', 'v2']);
  // the dataset that results loads (synthetic features on it)
  const db2 = JSON.parse(fs.readFileSync(path.join(out, 'gt_full.json'), 'utf8')).database;
  t.is(db2[testSplit[0]].subset, 'validation');
});
