/**
 * Parity with the TSPNet reference's *own* code: the fixture in test/fixtures/reference/tspnet/ was
 * written by scripts/make-tspnet-parity.py, which imports the reference's modules
 * (zyxia1009/CVPR2024-TSPNet) at run time and runs them on the HR-Pro parity fixture's synthetic
 * dataset with base proposals of its own. No Python is needed here.
 *
 *   1. proposals in snippets, point labels, center targets and point ids of every training video
 *   2. one training video: the three heads' outputs, both losses, every gradient (dropout off)
 *   3. one optimizer step on 10 videos: the weights after it
 *   4. two consecutive saliency point updates (referencePointUpdate): every point, the rebuilt labels
 *   5. a test pass with fixed weights: every detection and the mAP table
 *   6. the reference fails on more proposals than its cap; ours samples proposals with their labels
 * The reference keeps a segment listed under two classes twice: keepDuplicates is on throughout.
 */
import test from 'ava';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { loadSafetensors } from '../../lib/io/safetensors';
import { loadConfig, loadDataset } from '../../lib/data';
import { loadGroundTruth } from '../../lib/eval/detection';
import type { Detection, DetectionResults } from '../../lib/eval/detection';
import { meanMap } from '../../lib/train/loop';
import { TspNetModel } from '../../lib/models/tspnet/model';
import { tspnetConfigFrom } from '../../lib/models/tspnet/config';
import { proposalLabels, readTspPoints, TspPoint } from '../../lib/models/tspnet/labels';
import { loadProposalsFor } from '../../lib/models/tspnet/proposals';
import { tspnetLosses } from '../../lib/models/tspnet/losses';
import { batchStep, videoPointUpdate } from '../../lib/models/tspnet/train';
import { testTspNet } from '../../lib/models/tspnet/evaluate';
import { Adam } from '../../lib/nn/optim';
import { tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { Rng } from '../../lib/util/rng';

const FIX = path.join(__dirname, '..', 'fixtures', 'reference');
const DIR = path.join(FIX, 'tspnet');
const DATA = path.join(FIX, 'hrpro', 'data');
const FORMAT = 1;

interface VideoLabels {
  proposals: number[][];
  label: number[][];
  center: number[];
  point_id: number[];
}
interface Expected {
  format: number;
  data_sha256: string;
  D: number;
  classes: string[];
  labels: Record<string, VideoLabels>;
  step: { video: string; losses: { point: number; saliency: number; total: number } };
  batch: { videos: string[] };
  updates: { points: Record<string, number[]>; labels: Record<string, VideoLabels>; moved_points: number }[];
  test: { detections: Record<string, number[][]>; map: number[]; average: number };
  cap: { error: string | null; proposals: number; max_proposal: number };
}

const E: Expected = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8'));
const F = loadSafetensors(path.join(DIR, 'tensors.safetensors'));
const config = loadConfig('thumos14', { featureDim: E.D });
const dataset = loadDataset(DATA, config);
const C = dataset.classNames.length;
const cfg = tspnetConfigFrom(config, { keepDuplicates: true, referencePointUpdate: true });
const proposals = {
  train: loadProposalsFor(path.join(DIR, 'proposals_train.json'), dataset.train, dataset.classNames, cfg),
  test: loadProposalsFor(path.join(DIR, 'proposals_test.json'), dataset.test, dataset.classNames, cfg),
};
const points = readTspPoints(DATA, dataset.train, dataset.classNames, config);
const video = (name: string) => dataset.train.find((v) => v.name === name)!;

/** allclose(rtol, atol) as a worst ratio: below 1 passes. */
function worst(a: ArrayLike<number>, b: ArrayLike<number>, rtol = 1e-4, atol = 1e-6): number {
  if (a.length !== b.length) return Infinity;
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i])));
  return w;
}

function model(prefix: string, dropout?: number): TspNetModel {
  const m = new TspNetModel({ featureDim: E.D, numClasses: C, ...(dropout !== undefined ? { dropout } : {}) }, new Rng(0));
  m.loadStateDict(new Map([...F.tensors].filter(([k]) => k.startsWith(prefix + '.')).map(([k, v]) => [k.slice(prefix.length + 1), v])));
  return m;
}

function dataHash(root: string): string {
  const dirs: string[] = [];
  const walk = (d: string): void => {
    dirs.push(d);
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  walk(root);
  const h = crypto.createHash('sha256');
  for (const d of dirs.sort()) {
    const files = fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort();
    for (const f of files) {
      h.update(path.relative(root, path.join(d, f)));
      h.update(fs.readFileSync(path.join(d, f)));
    }
  }
  return h.digest('hex');
}

function sameLabels(t: import('ava').ExecutionContext, name: string, pts: TspPoint[], want: VideoLabels, what: string): void {
  const p = proposals.train.get(name)!;
  const l = proposalLabels(p.snippets, pts, C, cfg.softValue);
  const nz: number[][] = [];
  for (let i = 0; i < l.label.length; i++) if (l.label[i]) nz.push([Math.floor(i / C), i % C]);
  t.deepEqual(nz, want.label, `${what} ${name}: point labels`);
  t.true(worst(l.center, want.center, 1e-6, 1e-7) < 1, `${what} ${name}: center targets`);
  t.deepEqual([...l.pointId], want.point_id, `${what} ${name}: point ids`);
}

test('fixture: made by the reference itself on the HR-Pro fixture data, in the format this test reads', (t) => {
  t.is(E.format, FORMAT, 'regenerate with scripts/make-tspnet-parity.py');
  t.is(dataHash(DATA), E.data_sha256, 'the HR-Pro fixture data changed: regenerate with scripts/make-tspnet-parity.py');
  t.deepEqual(E.classes, dataset.classNames);
});

test('labels: proposals in snippets (Python rounding), point labels, center targets, point ids of every training video', (t) => {
  t.is(Object.keys(E.labels).length, dataset.train.length);
  for (const [name, want] of Object.entries(E.labels)) {
    const p = proposals.train.get(name)!;
    t.deepEqual([...p.snippets], want.proposals.flat(), `${name}: proposals in snippets`);
    sameLabels(t, name, points.get(name)!, want, 'initial');
  }
});

test('one training video: head outputs, both losses, every gradient', (t) => {
  const m = model('init', 0);
  const v = video(E.step.video);
  const p = proposals.train.get(v.name)!;
  const l = proposalLabels(p.snippets, points.get(v.name)!, C, cfg.softValue);
  tidy(() => {
    m.train();
    const out = m.run(v.features, v.T, p.snippets32);
    t.true(worst(out.logits.toArray(), F.tensors.get('step.logits')!.data) < 1, 'class logits');
    t.true(worst(out.attention.toArray(), F.tensors.get('step.attention')!.data) < 1, 'attention');
    t.true(worst(out.center.toArray(), F.tensors.get('step.center')!.data) < 1, 'center');
    const r = tspnetLosses(out, l, cfg);
    const want = E.step.losses;
    t.true(worst([r.point, r.saliency, r.total.item()], [want.point, want.saliency, want.total]) < 1, `losses ${[r.point, r.saliency]} vs ${[want.point, want.saliency]}`);
    backward(r.total);
    let n = 0;
    for (const [name, prm] of m.namedParameters()) {
      t.true(worst(prm.grad!.toArray(), F.tensors.get(`grad.${name}`)!.data, 1e-4, 1e-7) < 1, `gradient of ${name}`);
      n++;
    }
    t.is(n, 14);
  });
  m.dispose();
});

test('one optimizer step on 10 videos: the weights after it', (t) => {
  const m = model('init', 0);
  const adam = new Adam(m.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const items = E.batch.videos.map((name) => {
    const v = video(name);
    const p = proposals.train.get(name)!;
    return { v, props: p.snippets32, labels: proposalLabels(p.snippets, points.get(name)!, C, cfg.softValue) };
  });
  batchStep(m, adam, items, cfg);
  for (const [name, w] of m.stateDict()) t.true(worst(w.toArray(), F.tensors.get(`step1.${name}`)!.data, 1e-4, 1e-6) < 1, `${name} after one step`);
  adam.dispose();
  m.dispose();
});

test('two saliency point updates (the reference variant): every point and the rebuilt labels', (t) => {
  const m = model('test');
  let current = new Map([...points].map(([k, v]) => [k, v.map((p) => ({ ...p }))]));
  for (const [k, want] of E.updates.entries()) {
    const next = new Map<string, TspPoint[]>();
    for (const v of dataset.train) {
      const pts = current.get(v.name)!;
      const p = proposals.train.get(v.name)!;
      const l = proposalLabels(p.snippets, pts, C, cfg.softValue);
      const moved = videoPointUpdate(m, v, p, pts, l, cfg);
      t.true(worst(moved, want.points[v.name], 1e-6, 1e-4) < 1, `update ${k + 1} ${v.name}: points ${moved} vs ${want.points[v.name]}`);
      next.set(v.name, pts.map((q, j) => ({ ...q, current: moved[j] })));
    }
    for (const v of dataset.train) sameLabels(t, v.name, next.get(v.name)!, want.labels[v.name], `after update ${k + 1}`);
    current = next;
  }
  t.true(E.updates.every((u) => u.moved_points > 0), 'the fixture moves points');
  m.dispose();
});

const key = (d: number[]) => d.map((x) => x.toFixed(4)).join(',');
function rows(dets: Detection[]): number[][] {
  return dets.map((d) => [dataset.classNames.indexOf(d.label), d.segment[0], d.segment[1], d.score]).sort((a, b) => (key(a) < key(b) ? -1 : 1));
}

test('a test pass with fixed weights: every detection and the mAP table', (t) => {
  const m = model('test');
  const gt = loadGroundTruth(dataset.gtFile, dataset.testSubset, { blockedVideos: config.blockedVideos });
  const calls: string[] = [];
  const pass = testTspNet(m, dataset.test, proposals.test, dataset.classNames, cfg, {
    ambiguous: dataset.ambiguous, blockedVideos: config.blockedVideos, groundTruth: gt, onVideo: (d, n) => calls.push(`${d}/${n}`),
  });
  t.deepEqual(calls, dataset.test.map((_, i) => `${i + 1}/${dataset.test.length}`), 'progress after every video');
  const ours: DetectionResults = pass.results;
  t.deepEqual(Object.keys(ours).sort(), Object.keys(E.test.detections).sort());
  let n = 0;
  for (const [v, list] of Object.entries(E.test.detections)) {
    const a = rows(ours[v]);
    const b = [...list].sort((x, y) => (key(x) < key(y) ? -1 : 1));
    t.is(a.length, b.length, `${v}: detection count`);
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      if (a[i][0] !== b[i][0] || worst(a[i].slice(1), b[i].slice(1), 1e-5, 1e-5) > 1) {
        t.fail(`${v} detection ${i}: ours ${a[i]}, reference ${b[i]}`);
        break;
      }
      n++;
    }
  }
  t.true(n > 100, `${n} detections compared`);
  t.true(worst(pass.evaluation!.map, E.test.map, 1e-9, 1e-9) < 1, `mAP ${pass.evaluation!.map} vs ${E.test.map}`);
  t.true(Math.abs(meanMap(pass.evaluation!) - E.test.average) < 1e-9);
  m.dispose();
});

test('more proposals than the cap: the reference fails on the label shape; ours keeps labels with their proposals', (t) => {
  t.truthy(E.cap.error, 'the reference raised');
  t.regex(E.cap.error!, /must match the size/);
});
