/**
 * Parity with the HR-Pro reference's *own* code (llm.c style): the fixture in
 * test/fixtures/reference/hrpro/ was written by scripts/make-reference-parity.py, which imports the
 * reference's modules (pipixin321/HR-Pro) at run time and runs them on a small synthetic dataset in
 * the standard layout (the fixture's data/). Regenerate it with that script; no Python is needed here.
 *
 *   1. stage 1, one training video: forward outputs, each loss term, every gradient, memory update
 *   2. five training iterations (dropout off, fixed video order): loss per iteration, final weights
 *   3. a full stage-1 test pass with fixed weights: every detection and the mAP table
 *   4. the ranking: PP and RP of the training videos (NP is random: its invariants), test PP
 *   5. stage 2: one step's outputs, losses and gradients; a test pass's detections and mAP table
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadSafetensors } from '../../lib/io/safetensors';
import { loadConfig, loadDataset } from '../../lib/data';
import type { Detection, DetectionResults } from '../../lib/eval/detection';
import { Stage1Model } from '../../lib/models/hrpro/stage1';
import { Stage2Model } from '../../lib/models/hrpro/stage2';
import { selectSeed } from '../../lib/models/hrpro/pseudo_labels';
import { stage1Losses, updateMemory } from '../../lib/models/hrpro/losses';
import { stage1Step } from '../../lib/models/hrpro/train_stage1';
import { pointMatrix } from '../../lib/models/hrpro/videos';
import { testStage1, meanMap } from '../../lib/models/hrpro/evaluate';
import { stage2Losses } from '../../lib/models/hrpro/train_stage2';
import { testStage2 } from '../../lib/models/hrpro/evaluate';
import { ProposalsFile, packByClass } from '../../lib/formats/proposals';
import { groupByClass, rankVideo, seedRuns, Span } from '../../lib/models/hrpro/ranking';
import { stage1ConfigFrom } from '../../lib/models/hrpro/config';
import { stageContext } from '../../lib/models/hrpro/run';
import { stage2ConfigFrom } from '../../lib/models/hrpro/config';
import { refineProposals } from '../../lib/models/hrpro/stage2';
import { Adam } from '../../lib/nn/optim';
import { Tensor, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { Rng } from '../../lib/util/rng';
import * as ops from '../../lib/ops';

const DIR = path.join(__dirname, '..', 'fixtures', 'reference', 'hrpro');
const FORMAT = 1;

interface Expected {
  format: number;
  D: number;
  classes: string[];
  step: { video: string; losses: Record<string, number> };
  iterations: { order: string[]; loss: number[] };
  stage1_test: { detections: Record<string, number[][]>; map: number[]; average: number };
  ranking: {
    train: Record<string, { PP: number[][]; RP: number[][]; NP: number[][] }>;
    test: Record<string, { PP: number[][] }>;
  };
  stage2_step: {
    videos: string[];
    proposals: number[][][];
    targets: number[][][];
    draws: number[][];
    completeness: number[][];
    refined: number[][][];
    losses: Record<string, number>;
  };
  stage2_test: { detections: Record<string, number[][]>; map: number[]; average: number };
}

const E: Expected = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8'));
const F = loadSafetensors(path.join(DIR, 'tensors.safetensors'));
const config = loadConfig('thumos14', { featureDim: E.D });
const dataset = loadDataset(path.join(DIR, 'data'), config);
const ctx = stageContext(dataset, { out: fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-ref-')), quiet: true });
const C = dataset.classNames.length;
const base1 = stage1ConfigFrom(config);
const cfg1 = { ...base1, model: { ...base1.model, prototypeReshape: true } };
const cfg2 = stage2ConfigFrom(config);
const video = (name: string) => [...dataset.train, ...dataset.test].find((v) => v.name === name)!;

/** allclose(rtol, atol) as a worst ratio: below 1 passes. */
function worst(a: ArrayLike<number>, b: ArrayLike<number>, rtol = 1e-4, atol = 1e-6): number {
  if (a.length !== b.length) return Infinity;
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i])));
  return w;
}

function weights(prefix: string): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map([...F.tensors].filter(([k]) => k.startsWith(prefix + '.')).map(([k, v]) => [k.slice(prefix.length + 1), v]));
}

/** A stage-1 model with the reference's weights under `prefix`; dropout off where `deterministic`. */
function stage1Model(prefix: string, deterministic: boolean, prototypeReshape = true): Stage1Model {
  const drop = deterministic ? 0 : undefined;
  const m = new Stage1Model(
    {
      featureDim: E.D,
      numClasses: C,
      prototypeReshape,
      ...(deterministic ? { dropout: 0, rab: { heads: 8, feedForward: 128, dropout: 0, attentionDropout: drop! } } : {}),
    },
    new Rng(0),
  );
  m.loadStateDict(weights(prefix));
  return m;
}

const key = (d: number[]) => d.map((x) => x.toFixed(4)).join(',');
/** Detections as sorted [class, start, end, score] rows, to compare whatever the order of classes. */
function rows(dets: Detection[]): number[][] {
  return dets.map((d) => [dataset.classNames.indexOf(d.label), d.segment[0], d.segment[1], d.score]).sort((a, b) => (key(a) < key(b) ? -1 : 1));
}
function sameDetections(t: import('ava').ExecutionContext, ours: DetectionResults, theirs: Record<string, number[][]>, what: string): void {
  t.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort(), `${what}: videos`);
  let n = 0;
  for (const [v, list] of Object.entries(theirs)) {
    const a = rows(ours[v] ?? []);
    const b = [...list].sort((x, y) => (key(x) < key(y) ? -1 : 1));
    t.is(a.length, b.length, `${what}: ${v} detection count`);
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      if (a[i][0] !== b[i][0] || worst(a[i].slice(1), b[i].slice(1), 1e-5, 1e-5) > 1) {
        t.fail(`${what}: ${v} detection ${i}: ours ${a[i]}, reference ${b[i]}`);
        return;
      }
      n++;
    }
  }
  t.true(n > 0, `${what}: some detections compared`);
}

test('fixture: made by the reference itself, in the format this test reads', (t) => {
  t.is(E.format, FORMAT, 'regenerate with scripts/make-reference-parity.py');
  t.deepEqual(E.classes, dataset.classNames);
  t.is(dataset.train.length + dataset.test.length, Object.keys(E.ranking.train).length + Object.keys(E.ranking.test).length);
  // who wrote it: the generator that imports the reference, at a pinned commit
  const meta = E as unknown as Record<string, unknown>;
  t.is(meta.generator, 'scripts/make-reference-parity.py');
  t.is(meta.reference, 'pipixin321/HR-Pro');
  t.regex(String(meta.reference_commit), /^[0-9a-f]{40}$/);
  t.is(F.metadata.generator, 'scripts/make-reference-parity.py');
  // the reference's S_Model state dict: every name and shape of our Stage1Model's under init., test., iter5.
  const ours = new Stage1Model({ featureDim: E.D, numClasses: C, prototypeReshape: true }, new Rng(0));
  const shapes = new Map([...ours.stateDict()].map(([k, v]) => [k, v.shape]));
  for (const prefix of ['init', 'test', 'iter5']) {
    const w = weights(prefix);
    t.deepEqual([...w.keys()].sort(), [...shapes.keys()].sort(), `${prefix}: parameter names`);
    for (const [k, v] of w) t.deepEqual(v.shape, shapes.get(k), `${prefix}.${k}: shape`);
  }
  ours.dispose();
  const T = video(E.step.video).T;
  t.deepEqual(F.tensors.get('step.cas_fuse')!.shape, [T, C + 1]);
  t.deepEqual(F.tensors.get('step.memory_after')!.shape, [C, 1, E.D]);
  // a mark of the reference's own code that a fixture written from the SPEC would not have: its
  // prototype tokens are the [C, 1, D] memory reshaped to [D, C] (SPEC section 2). Recomputed here,
  // the step video's scores are the reshaped layout's, and far from the one-token-per-class layout's.
  const v = video(E.step.video);
  const casFuse = (reshape: boolean): Float32Array => {
    const m = stage1Model('init', true, reshape);
    const out = tidy(() => {
      m.train();
      return m.forward(Tensor.from(v.features, [v.T, E.D]), v.videoLabel).casFuse.toArray();
    });
    m.dispose();
    return out;
  };
  const want = F.tensors.get('step.cas_fuse')!.data;
  const [reshaped, perClass] = [worst(casFuse(true), want), worst(casFuse(false), want)];
  t.log(`allclose ratio: reshaped tokens ${reshaped.toFixed(3)}, one token per class ${perClass.toFixed(0)}`);
  t.true(reshaped < 1, "the reference's token layout reproduces its scores");
  t.true(perClass > 10, 'one token per class does not');
});

test('stage 1, one training video: forward, every loss term, every gradient, memory update', (t) => {
  const model = stage1Model('init', true);
  const v = video(E.step.video);
  tidy(() => {
    model.train();
    const out = model.forward(Tensor.from(v.features, [v.T, E.D]), v.videoLabel);
    t.true(worst(out.casFuse.toArray(), F.tensors.get('step.cas_fuse')!.data) < 1, 'cas_fuse');
    t.true(worst(out.vidScore.toArray(), F.tensors.get('step.vid_score')!.data) < 1, 'vid_score');
    t.true(worst(out.embedded.toArray(), F.tensors.get('step.embedded')!.data) < 1, 'embedded');
    const points = pointMatrix(v, C);
    const seeds = selectSeed(out.bkg.toArray(), points, C, cfg1);
    const l = stage1Losses(out, points, v.videoLabel, seeds, model.memory.tensor, cfg1.lossWeights);
    const r = E.step.losses;
    t.true(worst([l.video, l.frame, l.background, l.contrastive, l.total.item()], [r.loss_vid, r.loss_frame, r.loss_frame_bkg, r.loss_contrastive, r.loss_total]) < 1,
      `losses ${[l.video, l.frame, l.background, l.contrastive]} vs ${[r.loss_vid, r.loss_frame, r.loss_frame_bkg, r.loss_contrastive]}`);
    backward(l.total);
    let compared = 0;
    for (const [name, p] of model.namedParameters()) {
      const ref = F.tensors.get(`grad.${name}`);
      if (!ref) {
        t.true(!p.grad || p.grad.toArray().every((x) => x === 0), `${name}: the reference has no gradient`);
        continue;
      }
      t.true(worst(p.grad!.toArray(), ref.data, 1e-4, 1e-7) < 1, `gradient of ${name}`);
      compared++;
    }
    t.true(compared >= 20, `${compared} gradients compared`);
    updateMemory(model.memory.tensor, out.embedded, seeds, v.videoLabel, cfg1.memoryMomentum);
    t.true(worst(model.memory.tensor.toArray(), F.tensors.get('step.memory_after')!.data) < 1, 'memory after the update');
  });
  model.dispose();
});

test('stage 1: five training iterations from the same weights and videos: loss per iteration, final weights', (t) => {
  const model = stage1Model('init', true);
  const adam = new Adam(model.parameters(), { lr: cfg1.lr, weightDecay: cfg1.weightDecay });
  const B = cfg1.batchSize;
  const pointMats = new Map(dataset.train.map((v) => [v.name, pointMatrix(v, C)]));
  const losses: number[] = [];
  for (let i = 0; i < E.iterations.loss.length; i++) {
    const batch = E.iterations.order.slice(i * B, (i + 1) * B).map(video);
    losses.push(stage1Step(model, adam, batch, pointMats, cfg1).total);
  }
  t.true(worst(losses, E.iterations.loss) < 1, `losses ${losses} vs ${E.iterations.loss}`);
  const final = weights('iter5');
  for (const [name, tensor] of model.stateDict()) t.true(worst(tensor.toArray(), final.get(name)!.data, 1e-4, 2e-6) < 1, `${name} after 5 iterations`);
  adam.dispose();
  model.dispose();
});

test('stage 1: a full test pass with fixed weights gives the reference detections and mAP table', (t) => {
  const model = stage1Model('test', false);
  const calls: string[] = [];
  const pass = testStage1(model, ctx.test, ctx.classNames, cfg1, {
    ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth, onVideo: (d, n) => calls.push(`${d}/${n}`),
  });
  t.deepEqual(calls, ctx.test.map((_, i) => `${i + 1}/${ctx.test.length}`), 'progress after every video');
  sameDetections(t, pass.results, E.stage1_test.detections, 'stage-1 detections');
  t.true(worst(pass.evaluation!.map, E.stage1_test.map, 1e-9, 1e-9) < 1, `mAP ${pass.evaluation!.map} vs ${E.stage1_test.map}`);
  t.true(Math.abs(meanMap(pass.evaluation!) - E.stage1_test.average) < 1e-9);
  model.dispose();
});

test('ranking: PP and RP of every training video as the reference ranks them; NP invariants', (t) => {
  const model = stage1Model('test', false);
  const train = testStage1(model, ctx.train, ctx.classNames, cfg1, { evaluate: false });
  const testPass = testStage1(model, ctx.test, ctx.classNames, cfg1, { evaluate: false });
  const rng = new Rng(7);
  for (const v of ctx.train) {
    const s = train.scores.get(v.name)!;
    const seeds = selectSeed(s.bkg, pointMatrix(v, C), C, cfg1);
    const r = rankVideo(train.candidates.get(v.name)!, v.points, seeds.bkg, ctx.classNames, rng);
    const ref = E.ranking.train[v.name];
    const pp = Object.entries(r.PP).flatMap(([label, spans]) => spans.map((sp) => [ctx.classNames.indexOf(label), ...sp]));
    t.is(pp.length, ref.PP.length, `${v.name}: PP count`);
    t.true(worst(pp.flat(), ref.PP.flat(), 1e-5, 1e-5) < 1, `${v.name}: PP`);
    const rp = Object.entries(r.RP).flatMap(([label, spans]) => spans.map((sp) => [ctx.classNames.indexOf(label), ...(sp ?? [])]));
    t.is(JSON.stringify(rp.map((x) => x.length)), JSON.stringify(ref.RP.map((x) => x.length)), `${v.name}: RP found for the same points`);
    t.true(worst(rp.flat(), ref.RP.flat(), 1e-5, 1e-5) < 1, `${v.name}: RP ${JSON.stringify(rp)} vs ${JSON.stringify(ref.RP)}`);
    // NP: as many as the reference draws (when any run can yield one), each inside a background run
    const runs = seedRuns(seeds.bkg);
    t.is(r.NP.length, ref.NP.length, `${v.name}: NP count`);
    for (const [s0, e0, sc] of r.NP) {
      const run = runs.find(([a, b]) => s0 >= a && (a === b ? e0 === a + 1 : e0 < b));
      t.truthy(run, `${v.name}: NP [${s0}, ${e0}] inside a background run`);
      t.true(sc < 0 && sc >= -1);
    }
  }
  for (const v of ctx.test) {
    // grouped by class as proposals.json holds them (pipeline.finishStage1)
    const pp = Object.entries(groupByClass(testPass.candidates.get(v.name)!, ctx.classNames)).flatMap(([label, spans]) => spans.map((sp) => [ctx.classNames.indexOf(label), ...sp]));
    t.true(worst(pp.flat(), E.ranking.test[v.name].PP.flat(), 1e-5, 1e-5) < 1, `${v.name}: test PP`);
  }
  model.dispose();
});

function stage2Model(prefix: string, deterministic: boolean): Stage2Model {
  const m = new Stage2Model({ featureDim: E.D, ...(deterministic ? { dropout: 0 } : {}) }, new Rng(0));
  m.loadStateDict(weights(prefix));
  return m;
}

test('stage 2, one step on ten videos: completeness, refined proposals, both losses, every gradient', (t) => {
  const model = stage2Model('s2init', true);
  const S = E.stage2_step;
  const n = S.videos.length;
  let score = 0;
  let reg = 0;
  model.train();
  S.videos.forEach((name, i) => {
    const v = video(name);
    const proposals = Float32Array.from(S.proposals[i].flat());
    const targets = Float32Array.from(S.targets[i].flat());
    tidy(() => {
      const out = model.forward(model.proposalFeatures(v.features, v.T, proposals));
      t.true(worst(out.completeness.toArray(), S.completeness[i]) < 1, `${name}: completeness`);
      const refined = refineProposals(proposals, out);
      const st = refined.start.toArray();
      const en = refined.end.toArray();
      t.true(worst(S.refined[i].flatMap((_, m) => [st[m], en[m]]), S.refined[i].flat(), 1e-4, 1e-5) < 1, `${name}: refined proposals`);
    });
    // the reference draws one uniform per proposal and keeps a low-IoU one when its draw is high enough
    const { iou } = ops.maxSegmentIoUValues(proposals, targets);
    const lowDraws = S.draws[i].filter((_, m) => !(iou[m] >= cfg2.iouThreshold));
    const fake = { uniform: () => lowDraws.shift()! } as unknown as Rng;
    tidy(() => {
      const l = stage2Losses(model, v, proposals, targets, cfg2.iouThreshold, fake);
      if (l.total) backward(ops.mulScalar(l.total, 1 / n));
      score += l.score / n;
      reg += l.reg / n;
    });
  });
  t.true(worst([score, reg], [S.losses.loss_prop_iou, S.losses.loss_prop_reg]) < 1, `losses ${[score, reg]} vs ${[S.losses.loss_prop_iou, S.losses.loss_prop_reg]}`);
  for (const [name, p] of model.namedParameters()) {
    const ref = F.tensors.get(`s2grad.${name}`)!;
    t.true(worst(p.grad!.toArray(), ref.data, 1e-4, 1e-7) < 1, `gradient of ${name}`);
  }
  model.dispose();
});

test('stage 2: a test pass with fixed weights gives the reference detections and mAP table', (t) => {
  const model = stage2Model('s2test', false);
  const proposals: ProposalsFile = { train: {}, test: {} };
  for (const [v, r] of Object.entries(E.ranking.test)) {
    const pp: Record<string, Span[]> = {};
    for (const [c, s, e, sc] of r.PP) (pp[ctx.classNames[c]] ??= []).push([s, e, sc]);
    proposals.test[v] = { PP: packByClass(pp) };
  }
  const calls: string[] = [];
  const pass = testStage2(model, ctx.test, proposals, ctx.classNames, cfg2, {
    ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth, onVideo: (d, n) => calls.push(`${d}/${n}`),
  });
  t.deepEqual(calls, ctx.test.map((_, i) => `${i + 1}/${ctx.test.length}`), 'progress after every video');
  sameDetections(t, pass.results, E.stage2_test.detections, 'stage-2 detections');
  t.true(worst(pass.evaluation!.map, E.stage2_test.map, 1e-9, 1e-9) < 1, `mAP ${pass.evaluation!.map} vs ${E.stage2_test.map}`);
  model.dispose();
});

test('pstal import of the reference\'s own torch.save checkpoints, then pstal test, prints the reference\'s mAP tables', (t) => {
  const { spawnSync } = require('child_process') as typeof import('child_process');
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-ref-import-'));
  const pstal = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  try {
    for (const stage of ['1', '2']) {
      const r = pstal(['import', '--from', path.join(DIR, `model${stage}.pkl`), '--stage', stage, '--config', 'thumos14', '--dim', String(E.D), '--out', run]);
      t.is(r.status, 0, r.stderr);
    }
    for (const [stage, want] of [['1', E.stage1_test], ['2', E.stage2_test]] as const) {
      const results = path.join(run, `test${stage}.json`);
      const r = pstal(['test', '--model', run, '--data', path.join(DIR, 'data'), '--stage', stage, '--out-results', results]);
      t.is(r.status, 0, r.stderr);
      const row = r.stdout.split('\n').find((l) => /^\|\s+[\d.]+ \|/.test(l))!;
      const printed = row.split('|').map((c) => c.trim()).filter(Boolean).map(Number);
      const expected = [...want.map, ...[[0, 5], [2, 7], [0, 7]].map(([a, b]) => want.map.slice(a, b).reduce((x, y) => x + y, 0) / (b - a))].map((x) => Number((100 * x).toFixed(2)));
      t.deepEqual(printed, expected, `stage ${stage}: the printed table`);
      const dets = JSON.parse(fs.readFileSync(results, 'utf8')).results as DetectionResults;
      sameDetections(t, dets, want.detections, `stage ${stage} detections of the imported checkpoint`);
    }
  } finally {
    fs.rmSync(run, { recursive: true, force: true });
  }
});
