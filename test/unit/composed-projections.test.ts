/**
 * Composed projections (rab.ts: conv_query then the q in-projection as one affine map, the same for
 * k): composeAffine against a float64 reference of the two maps in a row, DeferredBackward against
 * plain backward passes, and the stage-1 model's forward and gradients with and without them.
 */
import test from 'ava';
import * as ops from '../../lib/ops';
import { Tensor, noGrad, tidy } from '../../lib/tensor/tensor';
import { DeferredBackward, backward } from '../../lib/tensor/autograd';
import { Parameter, applyAffine, composeAffine } from '../../lib/nn';
import { Stage1Model } from '../../lib/models/hrpro/stage1';
import { ReliabilityAwareBlock } from '../../lib/models/hrpro/rab';
import { scoreVideo } from '../../lib/models/hrpro/inference';
import { stage1Step } from '../../lib/models/hrpro/train_stage1';
import { Adam } from '../../lib/nn';
import { Rng } from '../../lib/util/rng';
import { checkOp, randArray, relErr } from '../helpers/gradcheck';

/** (x A^T + a) B^T + b in float64; x [L, n], A [m, n], a [m], B [o, m], b [o] */
function twoMaps(L: number, n: number, m: number, o: number) {
  return ([x, A, a, B, b]: Float64Array[]): Float64Array => {
    const y = new Float64Array(L * o);
    for (let r = 0; r < L; r++) {
      const h = new Float64Array(m);
      for (let i = 0; i < m; i++) {
        let s = a[i];
        for (let k = 0; k < n; k++) s += x[r * n + k] * A[i * n + k];
        h[i] = s;
      }
      for (let j = 0; j < o; j++) {
        let s = b[j];
        for (let i = 0; i < m; i++) s += h[i] * B[j * m + i];
        y[r * o + j] = s;
      }
    }
    return y;
  };
}

for (const [L, n, m, o] of [
  [7, 5, 6, 4],
  [33, 16, 16, 16],
  [1, 9, 3, 12],
]) {
  test(`composeAffine [${L}x${n}] -> ${m} -> ${o}: forward and all five gradients against the two maps in float64`, (t) => {
    checkOp(t, {
      name: 'composeAffine',
      shapes: [[L, n], [m, n], [m], [o, m], [o]],
      forward: ([x, A, a, B, b]) => applyAffine(x, composeAffine({ weight: A, bias: a }, { weight: B, bias: b })),
      ref: twoMaps(L, n, m, o),
    });
  });
}

test('composeAffine: maps that do not chain are an error naming both sizes', (t) => {
  tidy(() => {
    const e = t.throws(() => composeAffine({ weight: Tensor.zeros([3, 4]), bias: Tensor.zeros([3]) }, { weight: Tensor.zeros([2, 5]), bias: Tensor.zeros([2]) }));
    t.regex(e!.message, /inner map gives 3 values, outer takes 5/);
  });
});

test('DeferredBackward: three passes then one flush give the gradients of three plain passes', (t) => {
  const rng = new Rng(3);
  const w = Parameter.create(Float32Array.from(randArray(rng, 12)), [4, 3]);
  const u = Parameter.create(Float32Array.from(randArray(rng, 12)), [3, 4]);
  const xs = [0, 1, 2].map(() => Float32Array.from(randArray(rng, 5 * 4)));
  const pass = (p: Tensor, x: Float32Array) => tidy(() => backward(ops.sumAll(ops.mul(ops.matmul(Tensor.from(x, [5, 4]), p), ops.matmul(Tensor.from(x, [5, 4]), p)))));
  // plain: the product recomputed and backpropagated through every pass
  for (const x of xs) tidy(() => pass(ops.matmul(w, u), x));
  const plainW = w.grad!.toArray();
  const plainU = u.grad!.toArray();
  w.grad!.buffer.fill(0);
  u.grad!.buffer.fill(0);
  const d = new DeferredBackward(() => [ops.matmul(w, u)]);
  t.true(d.leaves[0].requiresGrad);
  t.is(d.leaves[0].node, null, 'the passes see a leaf');
  for (const x of xs) pass(d.leaves[0], x);
  t.deepEqual(Array.from(w.grad!.toArray()), new Array(12).fill(0), 'nothing reaches the parameters before flush');
  d.flush();
  t.true(relErr(w.grad!.toArray(), plainW) < 1e-6, 'w');
  t.true(relErr(u.grad!.toArray(), plainU) < 1e-6, 'u');
  t.is(d.leaves[0].grad, null, 'flush clears what it carried');
  d.flush(); // nothing gathered since: no change
  t.true(relErr(w.grad!.toArray(), plainW) < 1e-6);
  d.dispose();
  t.true(d.leaves[0].disposed);
  // under noGrad the leaves are the values themselves
  const e = noGrad(() => new DeferredBackward(() => [ops.matmul(w, u)]));
  t.false(e.leaves[0].requiresGrad);
  e.flush();
  e.dispose();
  for (const p of [w, u]) {
    p.grad!.dispose();
    p.dispose();
  }
});

const C = 3;
const D = 16;
function model(seed = 5): Stage1Model {
  const m = new Stage1Model({ featureDim: D, numClasses: C, rab: { heads: 4, feedForward: 8, dropout: 0.3, attentionDropout: 0.1 } }, new Rng(seed));
  // a non-zero memory, so that the prototype tokens matter
  m.memory.tensor.buffer.write(Float32Array.from(randArray(new Rng(seed + 1), C * D)));
  return m;
}
function video(T: number, seed: number) {
  const rng = new Rng(seed);
  const features = Float32Array.from(randArray(rng, T * D));
  const videoLabel = Float32Array.from([1, 0, 1]);
  return { name: `v${seed}`, T, D, features, videoLabel, points: [{ snippet: 2, classIndex: 0, time: 0 }, { snippet: T - 3, classIndex: 2, time: 0 }], gt: [] };
}

test('Stage1Model: forward with composed projections matches the plain forward; every gradient matches after flush', (t) => {
  const plain = model();
  const fused = model();
  const vs = [video(20, 1), video(31, 2)];
  for (const [m, useProjections] of [
    [plain, false],
    [fused, true],
  ] as const) {
    const p = useProjections ? m.composeProjections() : undefined;
    for (const v of vs)
      tidy(() => {
        const out = m.forward(Tensor.from(v.features, [v.T, D]), v.videoLabel, p);
        backward(ops.add(ops.sumAll(ops.mul(out.casFuse, out.casFuse)), ops.sumAll(ops.mul(out.embedded, out.embedded))));
      });
    p?.flush();
    p?.dispose();
  }
  const fp = fused.namedParameters();
  for (const [name, a] of plain.namedParameters()) {
    const b = fp.find(([k]) => k === name)![1];
    if (!a.grad) {
      t.true(!b.grad || b.grad.toArray().every((x) => x === 0), `${name}: no gradient in the plain model`);
      continue;
    }
    const ga = a.grad.toArray();
    const gb = b.grad!.toArray();
    if (Math.hypot(...ga) < 1e-6) {
      // the key biases: zero in real arithmetic (a shift of every key leaves each softmax row
      // alone), float noise of ~1e-8 on both paths (the other gradients' norms are ~1)
      t.true(Math.hypot(...gb) < 1e-6, `${name}: ${Math.hypot(...gb)} where the plain path has ~0`);
      continue;
    }
    const e = relErr(gb, ga);
    t.true(e < 1e-5, `${name}: gradient rel err ${e.toExponential(2)}`);
  }
  // conv_value is unused by the forward: nothing reaches it on either path
  t.falsy(plain.encoder.RAB[0].conv_value.weight.grad);
  plain.dispose();
  fused.dispose();
});

test('scoreVideo: the same bits with a pass-wide composition as composed per call; close to the plain forward', (t) => {
  const m = model();
  m.eval();
  const v = video(40, 9);
  const own = scoreVideo(m, v.features, v.T);
  const p = noGrad(() => m.composeProjections());
  const shared = scoreVideo(m, v.features, v.T, p);
  p.dispose();
  t.deepEqual(Array.from(shared.casP), Array.from(own.casP));
  t.deepEqual(Array.from(shared.bkg), Array.from(own.bkg));
  const ref = noGrad(() => tidy(() => m.forward(Tensor.from(v.features, [v.T, D])).casP.toArray()));
  t.true(relErr(own.casP, ref) < 1e-5);
  m.dispose();
});

test('stage1Step: composes once a batch when the batch has more tokens than D, never below', (t) => {
  const cfg = { actThreshold: 0.1, bkgThreshold: 0.95, lossWeights: { video: 0, frame: 0.5, background: 1, contrastive: 1 }, memoryMomentum: 0.001 };
  const m = model();
  const adam = new Adam(m.parameters(), { lr: 1e-3 });
  let composed = 0;
  const compose = m.composeProjections.bind(m);
  m.composeProjections = () => (composed++, compose());
  // 2 x (4 + 3) = 14 tokens <= D = 16: the plain path
  const small = [video(4, 11), video(4, 12)].map((v) => ({ ...v, points: [{ snippet: 1, classIndex: 0, time: 0 }] }));
  const before = m.encoder.RAB[0].conv_query.weight.toArray();
  stage1Step(m, adam, small, new Map(), cfg);
  t.is(composed, 0);
  t.notDeepEqual(Array.from(m.encoder.RAB[0].conv_query.weight.toArray()), Array.from(before), 'conv_query trained');
  // 3 videos of 20 + 3 tokens: one composition for the batch, and conv_query still trains
  const mid = m.encoder.RAB[0].conv_query.weight.toArray();
  stage1Step(m, adam, [video(20, 13), video(20, 14), video(20, 15)], new Map(), cfg);
  t.is(composed, 1);
  t.notDeepEqual(Array.from(m.encoder.RAB[0].conv_query.weight.toArray()), Array.from(mid), 'conv_query trained through the composition');
  adam.dispose();
  m.dispose();
});

// The last RAB computes only the snippets' rows (Encoder.forward passes queryRows = T): the same
// bits as computing all L rows and slicing, in training (every dropout on), for the output, the
// input's gradient and every parameter's, with and without composed projections. Two blocks built
// from the same seed draw the same weights and the same dropout seeds.
for (const composed of [false, true])
  test(`RAB with queryRows = T: the first T rows of the full block and the same gradients, bit for bit (composed projections: ${composed})`, (t) => {
    const L = 37, T = 31, D = 16;
    const opts = { heads: 4, feedForward: 8, dropout: 0.3, attentionDropout: 0.1 };
    const xs = new Rng(3).uniformArray(L * D, -1, 1);
    const gy = new Rng(4).uniformArray(T * D, -1, 1);
    const run = (rows: number | undefined) =>
      tidy(() => {
        const block = new ReliabilityAwareBlock(D, opts, new Rng(5));
        block.train();
        const x = Tensor.from(xs, [L, D]);
        x.requiresGrad = true;
        const proj = composed ? block.composedProjections() : undefined;
        let y = block.forward(x, proj, rows);
        if (rows === undefined) y = ops.slice(y, 0, 0, T);
        backward(y, Tensor.from(gy, [T, D]));
        return { y: y.toArray(), dx: x.grad!.toArray(), grads: block.parameters().map((p) => p.grad?.toArray() ?? null) };
      });
    const full = run(undefined);
    const part = run(T);
    t.deepEqual(part.y, full.y, 'output');
    t.deepEqual(part.dx, full.dx, 'input gradient');
    t.is(part.grads.length, full.grads.length);
    part.grads.forEach((g, i) => t.deepEqual(g, full.grads[i], `parameter ${i}`));
    t.true(full.grads.filter((g) => g && g.some((v) => v !== 0)).length >= 10, 'gradients reach the parameters');
  });
