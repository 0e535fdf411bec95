/**
 * lib/data: configs (configs/*.yaml, loadConfig) and the dataset loader (SPEC §1) on copies of the
 * real THUMOS14 / GTEA / BEOID annotations with small random features (D = 8, T = floor(duration *
 * 25 / 16) rows), plus every bad-input case with its message.
 */
import avaTest from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CONFIG_NAMES, DatasetConfig, loadConfig, loadDataset, readNpy, writeNpy } from '../../lib/data';
import { numpyArange } from '../../lib/postprocess';
import { Rng } from '../../lib/util/rng';

import { sharedDataDir, withSharedData } from '../helpers/shared-data';

const test = withSharedData(avaTest);
const DATA = sharedDataDir() ?? '';
const D = 8;

interface GtJson {
  database: Record<string, { subset: string; duration: number; fps: number; annotations: { label: string; segment: [number, number] }[] }>;
}

const tmpRoots: string[] = [];
test.after.always(() => {
  for (const dir of tmpRoots) fs.rmSync(dir, { recursive: true, force: true });
});

function readLines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * Copy one dataset's annotations into a fresh temporary folder and write random features for every
 * split video. `rows(video)` may change a video's T; `width(video)` its D; `skip(video)` leaves it
 * without a file.
 */
function makeCopy(
  name: string,
  opts: { rows?: (video: string, T: number) => number; width?: (video: string) => number; skip?: (video: string) => boolean } = {},
): { root: string; gt: GtJson; train: string[]; test: string[] } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `pstal-data-${name}-`));
  tmpRoots.push(root);
  fs.cpSync(path.join(DATA, name), root, { recursive: true });
  const gt = JSON.parse(fs.readFileSync(path.join(root, 'gt_full.json'), 'utf8')) as GtJson;
  const rng = new Rng(7);
  const lists = { train: readLines(path.join(root, 'split_train.txt')), test: readLines(path.join(root, 'split_test.txt')) };
  for (const split of ['train', 'test'] as const) {
    fs.mkdirSync(path.join(root, 'features', split), { recursive: true });
    for (const video of lists[split]) {
      if (opts.skip?.(video)) continue;
      const T0 = Math.floor((gt.database[video].duration * 25) / 16);
      const T = opts.rows ? opts.rows(video, T0) : T0;
      const width = opts.width ? opts.width(video) : D;
      const data = new Float32Array(T * width);
      for (let i = 0; i < data.length; i++) data[i] = rng.normal();
      writeNpy(path.join(root, 'features', split, `${video}.npy`), data, [T, width]);
    }
  }
  return { root, gt, train: lists.train, test: lists.test };
}

/** The csv's rows (these files have no quoted fields), by header name. */
function csvRows(root: string): Record<string, string>[] {
  const lines = readLines(path.join(root, 'point_labels', 'point_gaussian.csv'));
  const header = lines[0].split(',');
  return lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
}

/** Expected points of each video, straight from the SPEC §1 formula. */
function expectedPoints(root: string, gt: GtJson, classNames: string[], T: (video: string) => number) {
  const out = new Map<string, { snippet: number; classIndex: number; frame: number }[]>();
  for (const r of csvRows(root)) {
    const v = gt.database[r.video_id];
    if (!v) continue;
    const frame = Number(r.point);
    const snippet = Math.min(Math.floor(frame * (25 / (v.fps * 16))), T(r.video_id) - 1);
    const classIndex = classNames.indexOf(r.class);
    const list = out.get(r.video_id) ?? [];
    if (!list.some((p) => p.snippet === snippet && p.classIndex === classIndex)) list.push({ snippet, classIndex, frame });
    out.set(r.video_id, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.snippet - b.snippet || a.classIndex - b.classIndex);
  return out;
}

function thumosConfig(): DatasetConfig {
  return loadConfig('thumos14', { featureDim: D });
}

const THUMOS_CLASSES = [
  'BaseballPitch', 'BasketballDunk', 'Billiards', 'CleanAndJerk', 'CliffDiving', 'CricketBowling', 'CricketShot',
  'Diving', 'FrisbeeCatch', 'GolfSwing', 'HammerThrow', 'HighJump', 'JavelinThrow', 'LongJump', 'PoleVault',
  'Shotput', 'SoccerPenalty', 'TennisSwing', 'ThrowDiscus', 'VolleyballSpiking',
];

// ------------------------------------------------------------------ configs

test('thumos14 config: reference hyper-parameters and numpy-exact threshold lists', (t) => {
  const c = loadConfig('thumos14');
  t.is(c.name, 'THUMOS14');
  t.is(c.featureDim, 2048);
  t.is(c.featureFps, 25);
  t.is(c.snippetFrames, 16);
  t.deepEqual(c.classNames, THUMOS_CLASSES);
  t.deepEqual(c.blockedVideos, ['video_test_0000270', 'video_test_0001292', 'video_test_0001496']);
  t.deepEqual(c.tiou, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
  const s1 = c.stage1;
  t.deepEqual(
    [s1.iterations, s1.testEvery, s1.batchSize, s1.lr, s1.weightDecay, s1.dropout, s1.rAct],
    [1000, 50, 16, 1e-4, 5e-4, 0.7, 8],
  );
  t.deepEqual(s1.lambdas, [0, 0.5, 1, 1]);
  t.deepEqual([s1.actThreshold, s1.bkgThreshold, s1.classThreshold, s1.lambda, s1.gamma, s1.scale, s1.softNmsSigma], [0.1, 0.95, 0.5, 0.25, 0, 2, 0.3]);
  t.deepEqual(s1.casThresholds, numpyArange(0, 0.25, 0.025));
  t.is(s1.casThresholds.length, 10);
  t.is(s1.casThresholds[3], 0.07500000000000001); // numpy's float64 value, not 0.075
  t.deepEqual(s1.agnosticThresholds, numpyArange(0.5, 0.725, 0.025));
  t.is(s1.agnosticThresholds.length, 9);
  t.deepEqual(c.stage2, {
    lr: 5e-5, weightDecay: 5e-4, batchSize: 10, maxProposals: 1000, epochs: 20, testEvery: 1,
    roiBins: 12, extension: 0.25, iouThreshold: 0.3, dropout: 0.7,
  });
  t.true(c.file!.endsWith(path.join('configs', 'thumos14.yaml')));
});

test('every shipped config loads; activitynet tIoU is numpy linspace(0.5, 0.95, 10)', (t) => {
  t.deepEqual(CONFIG_NAMES.sort(), ['activitynet13', 'beoid', 'gtea', 'thumos14']);
  for (const name of CONFIG_NAMES) {
    const c = loadConfig(name);
    t.is(c.featureDim, 2048, name);
    t.is(c.stage1.casThresholds.length, 10, name);
  }
  t.is(loadConfig('gtea').classNames, undefined);
  t.is(loadConfig('beoid').classNames, undefined);
  t.deepEqual(loadConfig('gtea').tiou, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
  const anet = loadConfig('activitynet13').tiou;
  t.is(anet.length, 10);
  t.is(anet[0], 0.5);
  t.is(anet[8], 0.8999999999999999); // numpy.linspace's value
  t.is(anet[9], 0.95);
});

test('config overrides: featureDim, dotted stage keys, checked like the file', (t) => {
  const c = loadConfig('thumos14', { featureDim: 8, 'stage1.lr': 0.001, stage2: { epochs: 3 } });
  t.is(c.featureDim, 8);
  t.is(c.stage1.lr, 0.001);
  t.is(c.stage2.epochs, 3);
  t.is(c.stage2.lr, 5e-5);
  t.throws(() => loadConfig('thumos14', { featureDim: 0 }), { message: /overrides.*"featureDim" must be a positive integer/ });
  t.throws(() => loadConfig('thumos14', { 'stage1.lrr': 1 }), { message: /overrides.*unknown field "stage1\.lrr"/ });
  t.throws(() => loadConfig('thumos14', { featureDims: 1 }), { message: /unknown field "featureDims"/ });
});

test('bad config files: error names the file and the field', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-cfg-'));
  tmpRoots.push(dir);
  const base = fs.readFileSync(loadConfig('thumos14').file!, 'utf8');
  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const ok = write('ok.yaml', base);
  t.is(loadConfig(ok).name, 'THUMOS14');
  const cases: [string, string, RegExp][] = [
    ['unknown-top.yaml', base + 'featureDims: 3\n', /unknown field "featureDims"/],
    ['unknown-stage.yaml', base.replace('  rAct: 8', '  rAct: 8\n  ract: 8'), /unknown field "stage1\.ract"/],
    ['wrong-type.yaml', base.replace('featureDim: 2048', 'featureDim: "2048"'), /field "featureDim" must be a positive integer, received the string "2048"/],
    ['wrong-lr.yaml', base.replace('  lr: 0.0001', '  lr: fast'), /field "stage1\.lr" must be a non-negative number/],
    ['lambdas.yaml', base.replace('lambdas: [0, 0.5, 1, 1]', 'lambdas: [0, 0.5, 1]'), /field "stage1\.lambdas" must be a list of 4 numbers/],
    ['range.yaml', base.replace('{start: 0.0, stop: 0.25, step: 0.025}', '{start: 0.0, stop: 0.25}'), /field "stage1\.casThresholds" must be a range/],
    ['missing.yaml', base.replace(/^featureFps: 25\n/m, ''), /missing field "featureFps"/],
    ['classes.yaml', base.replace('BaseballPitch,', 'BaseballPitch, 3,'), /field "classNames" must be a list of non-empty strings/],
  ];
  for (const [name, text, re] of cases) {
    const file = write(name, text);
    const e = t.throws(() => loadConfig(file), undefined, name);
    t.true(e!.message.includes(file), `${name}: ${e!.message}`);
    t.regex(e!.message, re, name);
  }
  t.throws(() => loadConfig(path.join(dir, 'absent.yaml')), { message: /config file not found: .*absent\.yaml/ });
  t.throws(() => loadConfig('thumos15'), { message: /unknown config "thumos15".*thumos14/ });
  const badYaml = write('bad.yaml', 'name: [unclosed\n');
  t.throws(() => loadConfig(badYaml), { message: new RegExp(`${badYaml.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid YAML`) });
});

// ------------------------------------------------------------------ THUMOS14

test('THUMOS14: splits, subsets, classes, points, labels, features, ambiguous list', (t) => {
  const { root, gt, train, test: testList } = makeCopy('THUMOS14');
  const warnings: string[] = [];
  const ds = loadDataset(root, thumosConfig(), { onWarning: (m) => warnings.push(m) });
  t.deepEqual(warnings, []);
  t.is(Object.keys(gt.database).length, 412); // 200 Validation + 212 Test videos in gt_full.json
  t.is(ds.train.length, 200);
  // split_test.txt lists 210: two of the blocked videos (270, 1496) are not in it.
  t.is(ds.test.length, 210);
  t.is(testList.length, 210);
  t.deepEqual(ds.train.map((v) => v.name), train);
  t.is(ds.trainSubset, 'Validation');
  t.is(ds.testSubset, 'Test');
  t.deepEqual(ds.classNames, THUMOS_CLASSES);
  t.deepEqual(ds.classNames, [...new Set(Object.values(gt.database).flatMap((v) => v.annotations.map((a) => a.label)))].sort());
  t.deepEqual(ds.skipped, { missingFeatures: [], unknownVideos: [], unknownClassPoints: 0, pointsPastEnd: 0, messages: [] });

  const all = [...ds.train, ...ds.test];
  const T = new Map(all.map((v) => [v.name, v.T]));
  const expected = expectedPoints(root, gt, THUMOS_CLASSES, (v) => T.get(v)!);
  let total = 0;
  for (const v of all) {
    const info = gt.database[v.name];
    t.is(v.T, Math.floor((info.duration * 25) / 16));
    t.is(v.D, D);
    t.is(v.features.length, v.T * D);
    t.is(v.fps, info.fps);
    t.is(v.duration, info.duration);
    t.is(v.subset, v.split === 'train' ? 'Validation' : 'Test');
    const labels = new Set(info.annotations.map((a) => a.label));
    t.deepEqual([...v.videoLabel], THUMOS_CLASSES.map((c) => (labels.has(c) ? 1 : 0)), v.name);
    t.deepEqual(v.gt, info.annotations.map((a) => ({ label: a.label, segment: a.segment })));
    const exp = expected.get(v.name) ?? [];
    t.deepEqual(v.points, exp.map((p) => ({ ...p, time: p.frame / info.fps })), v.name);
    total += v.points.length;
  }
  // 3003 csv rows; 5 fall on a snippet that already has a point of their class.
  t.is(csvRows(root).length, 3003);
  t.is(total, 2998);

  // By hand: csv row 2 "Billiards,2,2025,2277,video_validation_0000051,2151", fps 30:
  // 2151 * 25 / (30 * 16) = 112.03 -> snippet 112, at 71.7 s.
  const v51 = ds.train.find((v) => v.name === 'video_validation_0000051')!;
  t.deepEqual(v51.points[0], { snippet: 112, classIndex: 2, frame: 2151, time: 71.7 });
  // row 5 "Billiards,2,729,744,video_validation_0000052,734": 734 * 25 / 480 = 38.23 -> 38.
  t.deepEqual(ds.train.find((v) => v.name === 'video_validation_0000052')!.points[0].snippet, 38);

  // Features are what was written.
  const onDisk = readNpy(path.join(root, 'features', 'test', `${ds.test[5].name}.npy`));
  t.deepEqual(onDisk.shape, [ds.test[5].T, D]);
  t.deepEqual(ds.test[5].features, onDisk.data);

  // Ambiguous_test.txt: 99 segments of 37 videos.
  t.is(ds.ambiguous.size, 37);
  t.is([...ds.ambiguous.values()].reduce((s, l) => s + l.length, 0), 99);
  t.deepEqual(ds.ambiguous.get('video_test_0000278')!.slice(0, 2), [[0.0, 1.4], [95.7, 97.2]]);
});

test('splits and maxVideos options', (t) => {
  const { root, train } = makeCopy('THUMOS14', { skip: (v) => v.startsWith('video_test') });
  const ds = loadDataset(root, thumosConfig(), { splits: ['train'], maxVideos: 3 });
  t.deepEqual(ds.train.map((v) => v.name), train.slice(0, 3));
  t.deepEqual(ds.test, []);
  t.is(ds.trainSubset, 'Validation');
  t.deepEqual(ds.skipped.missingFeatures, []);
});

// ------------------------------------------------------------------ GTEA / BEOID

for (const [name, nTrain, nTest, nClasses] of [['GTEA', 21, 7, 7], ['BEOID', 46, 12, 34]] as const) {
  test(`${name}: class names from gt_full.json, subsets from the file, points by the formula`, (t) => {
    const { root, gt } = makeCopy(name);
    const cfg = loadConfig(name.toLowerCase(), { featureDim: D });
    const warnings: string[] = [];
    const ds = loadDataset(root, cfg, { onWarning: (m) => warnings.push(m) });
    t.deepEqual(warnings, []);
    t.is(ds.train.length, nTrain);
    t.is(ds.test.length, nTest);
    t.is(ds.trainSubset, 'training');
    t.is(ds.testSubset, 'validation');
    const labels = [...new Set(Object.values(gt.database).flatMap((v) => v.annotations.map((a) => a.label)))].sort();
    t.is(labels.length, nClasses);
    t.deepEqual(ds.classNames, labels);
    t.is(ds.ambiguous.size, 0);
    const all = [...ds.train, ...ds.test];
    const T = new Map(all.map((v) => [v.name, v.T]));
    const expected = expectedPoints(root, gt, labels, (v) => T.get(v)!);
    for (const v of all) {
      const info = gt.database[v.name];
      t.deepEqual(v.points, (expected.get(v.name) ?? []).map((p) => ({ ...p, time: p.frame / info.fps })), v.name);
      const present = new Set(info.annotations.map((a) => a.label));
      t.deepEqual([...v.videoLabel], labels.map((c) => (present.has(c) ? 1 : 0)));
    }
    if (name === 'GTEA') {
      // By hand: "take,18.0,77.0,S3_Pealate_C1,48", fps 15: 48 * 25 / (15 * 16) = 5 -> snippet 5.
      const v = all.find((x) => x.name === 'S3_Pealate_C1')!;
      t.deepEqual(v.points[0], { snippet: 5, classIndex: labels.indexOf('take'), frame: 48, time: 3.2 });
    }
  });
}

// ------------------------------------------------------------------ bad inputs

test('listed videos without features are skipped, counted and named in a warning', (t) => {
  const gone = ['video_validation_0000051', 'video_validation_0000052', 'video_test_0000004'];
  const { root } = makeCopy('THUMOS14', { skip: (v) => gone.includes(v) });
  const warnings: string[] = [];
  const ds = loadDataset(root, thumosConfig(), { onWarning: (m) => warnings.push(m) });
  t.is(ds.train.length, 198);
  t.is(ds.test.length, 209);
  t.deepEqual(ds.skipped.missingFeatures.sort(), [...gone].sort());
  t.is(warnings.length, 2);
  t.regex(warnings[0], /features[\\/]train: 2 of 200 listed video\(s\) have no \.npy features, skipped: video_validation_0000051, video_validation_0000052/);
  t.regex(warnings[1], /features[\\/]test: 1 of 210 listed video\(s\) have no \.npy features, skipped: video_test_0000004/);
  t.deepEqual(ds.skipped.messages, warnings);
});

test('split videos absent from gt_full.json are skipped with a warning', (t) => {
  const { root } = makeCopy('THUMOS14');
  fs.appendFileSync(path.join(root, 'split_train.txt'), 'video_validation_9999999\n');
  const warnings: string[] = [];
  const ds = loadDataset(root, thumosConfig(), { onWarning: (m) => warnings.push(m) });
  t.is(ds.train.length, 200);
  t.deepEqual(ds.skipped.unknownVideos, ['video_validation_9999999']);
  t.is(warnings.length, 1);
  t.regex(warnings[0], /split_train\.txt: 1 video\(s\) not in .*gt_full\.json, skipped: video_validation_9999999/);
});

test('points of an unknown class: one warning per class with its count; other videos ignored', (t) => {
  const { root } = makeCopy('THUMOS14');
  const csv = path.join(root, 'point_labels', 'point_gaussian.csv');
  fs.appendFileSync(
    csv,
    [
      'Juggling,21,10,20,video_validation_0000051,15',
      'Juggling,21,30,40,video_test_0000004,35',
      'Skating,22,30,40,video_validation_0000052,35',
      'Skating,22,30,40,video_validation_9999999,35', // not in gt_full.json: ignored, with a warning
      '',
    ].join('\n'),
  );
  const warnings: string[] = [];
  const ds = loadDataset(root, thumosConfig(), { onWarning: (m) => warnings.push(m) });
  t.is(ds.skipped.unknownClassPoints, 3);
  t.is(warnings.length, 3);
  t.regex(warnings[2], /point_gaussian\.csv: 1 video id\(s\) not in .*gt_full\.json, their points ignored: video_validation_9999999/);
  t.regex(warnings[0], /point_gaussian\.csv: class "Juggling" is not among the 20 classes; its 2 point\(s\) skipped/);
  t.regex(warnings[1], /class "Skating" is not among the 20 classes; its 1 point\(s\) skipped/);
  t.false(ds.train.some((v) => v.points.some((p) => p.classIndex < 0 || p.classIndex >= 20)));
});

test('points past the last snippet move to T - 1, counted, one summary warning', (t) => {
  // video_validation_0000051 (fps 30) has points at frames 2151, 2647, 4311 -> snippets 112, 137, 224 ...
  const { root } = makeCopy('THUMOS14', { rows: (v, T) => (v === 'video_validation_0000051' ? 120 : T) });
  const warnings: string[] = [];
  const ds = loadDataset(root, thumosConfig(), { onWarning: (m) => warnings.push(m) });
  const v = ds.train.find((x) => x.name === 'video_validation_0000051')!;
  t.is(v.T, 120);
  const frames = csvRows(root).filter((r) => r.video_id === v.name).map((r) => Number(r.point));
  const past = frames.filter((f) => Math.floor(f * (25 / (30 * 16))) > 119).length;
  t.true(past >= 2);
  t.is(ds.skipped.pointsPastEnd, past);
  t.is(v.points[0].snippet, 112);
  t.true(v.points.slice(1).every((p) => p.snippet === 119)); // same class: merged into one label at T - 1
  t.is(v.points.length, 2);
  t.is(warnings.length, 1);
  t.regex(warnings[0], new RegExp(`${past} point\\(s\\) fall past the last snippet of their video; moved to snippet T - 1`));
});

test('feature width different from the config: error naming the file and both widths', (t) => {
  const { root } = makeCopy('THUMOS14', { width: (v) => (v === 'video_validation_0000053' ? 9 : D) });
  t.throws(() => loadDataset(root, thumosConfig()), {
    message: /features[\\/]train[\\/]video_validation_0000053\.npy: feature width 9 does not match the config's featureDim 8/,
  });
});

test('feature file that is not [T, D]: error naming it', (t) => {
  const { root } = makeCopy('THUMOS14');
  const file = path.join(root, 'features', 'test', 'video_test_0000004.npy');
  writeNpy(file, new Float32Array(16), [16]);
  t.throws(() => loadDataset(root, thumosConfig()), { message: /video_test_0000004\.npy: features must be \[T, D\], found shape \[16\]/ });
  writeNpy(file, new Float32Array(0), [0, D]);
  t.throws(() => loadDataset(root, thumosConfig()), { message: /video_test_0000004\.npy: features must have at least one row/ });
});

test('missing gt_full.json, split file or csv column: error naming the file', (t) => {
  const { root } = makeCopy('GTEA');
  const cfg = loadConfig('gtea', { featureDim: D });
  fs.rmSync(path.join(root, 'split_test.txt'));
  t.throws(() => loadDataset(root, cfg), { message: /split file not found: .*split_test\.txt/ });
  t.notThrows(() => loadDataset(root, cfg, { splits: ['train'] }));
  const csv = path.join(root, 'point_labels', 'point_gaussian.csv');
  fs.writeFileSync(csv, fs.readFileSync(csv, 'utf8').replace('video_id', 'video'));
  t.throws(() => loadDataset(root, cfg, { splits: ['train'] }), { message: /point_gaussian\.csv: missing column "video_id"/ });
  fs.writeFileSync(csv, 'class,start_frame,stop_frame,video_id,point\ntake,1,2,S3_Pealate_C1,abc\n');
  t.throws(() => loadDataset(root, cfg, { splits: ['train'] }), { message: /point_gaussian\.csv:2: column "point" must be a non-negative frame number/ });
  fs.rmSync(path.join(root, 'gt_full.json'));
  t.throws(() => loadDataset(root, cfg), { message: /ground-truth file not found: .*gt_full\.json/ });
});

test('bad Ambiguous_test.txt line: error naming the file and the line', (t) => {
  const { root } = makeCopy('THUMOS14', { skip: () => true });
  const file = path.join(root, 'Ambiguous_test.txt');
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.splice(4, 0, 'video_test_0000293  50.6');
  fs.writeFileSync(file, lines.join('\n'));
  t.throws(() => loadDataset(root, thumosConfig()), { message: /Ambiguous_test\.txt:5: expected "video start end" \(seconds\), found "video_test_0000293  50.6"/ });
  lines[4] = 'video_test_0000293  fifty 54.6';
  fs.writeFileSync(file, lines.join('\n'));
  t.throws(() => loadDataset(root, thumosConfig()), { message: /Ambiguous_test\.txt:5:/ });
});

test('bad gt_full.json fields: error naming the file and the video', (t) => {
  const { root, gt } = makeCopy('GTEA', { skip: () => true });
  gt.database.S3_Pealate_C1.fps = 0;
  fs.writeFileSync(path.join(root, 'gt_full.json'), JSON.stringify(gt));
  t.throws(() => loadDataset(root, loadConfig('gtea', { featureDim: D })), {
    message: /gt_full\.json: video "S3_Pealate_C1": field "fps" must be a positive number/,
  });
});
