/**
 * HR-Pro stage 1: select_seed on hand-made score sequences (every branch), the losses against
 * float64 references, the memory update, the model's shapes and parameter names, and the whole
 * model worked by hand on a tiny case in the default prototype layout.
 */
import test from 'ava';
import { selectSeed, regionRows } from '../../lib/models/hrpro/pseudo_labels';
import { contrastiveLoss, focalFrameLoss, updateMemory } from '../../lib/models/hrpro/losses';
import { Stage1Model } from '../../lib/models/hrpro/stage1';
import { scoreVideo } from '../../lib/models/hrpro/inference';
import { Tensor, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { Rng } from '../../lib/util/rng';
import { relErr } from '../helpers/gradcheck';

const C = 2;
/** points: [t, class] pairs -> [T, C] multi-hot */
function pts(T: number, list: [number, number][]): Float32Array {
  const p = new Float32Array(T * C);
  for (const [t, c] of list) p[t * C + c] = 1;
  return p;
}
const actClass = (act: Float32Array, T: number): string =>
  [...Array(T).keys()].map((t) => (act[t * C] ? 'a' : act[t * C + 1] ? 'b' : '.')).join('');
const bkgStr = (bkg: Float32Array): string => Array.from(bkg, (v) => (v ? 'B' : '.')).join('');

test('selectSeed: left of the first point with confident background (everything up to the last marked)', (t) => {
  //           0     1     2     3     4     5    6(point)
  const bkg = [0.2, 0.96, 0.3, 0.97, 0.05, 0.02, 0.5];
  const s = selectSeed(bkg, pts(7, [[6, 0]]), C);
  t.is(bkgStr(s.bkg), 'BBBB...');
  t.is(actClass(s.act, 7), '....aaa'); // grows left over 5, 4 (<= 0.1), stops at the background 3
});

test('selectSeed: left of the first point without confident background (up to and including argmax)', (t) => {
  const bkg = [0.3, 0.8, 0.2, 0.08, 0.09, 0.4];
  const s = selectSeed(bkg, pts(6, [[5, 1]]), C);
  t.is(bkgStr(s.bkg), 'BB....');
  t.is(actClass(s.act, 6), '...bbb');
});

test('selectSeed: right of the last point (from the first marked, or from argmax, to the end)', (t) => {
  const a = selectSeed([0.5, 0.01, 0.5, 0.99, 0.2, 0.96, 0.1], pts(7, [[0, 0]]), C);
  t.is(bkgStr(a.bkg), '...BBBB');
  t.is(actClass(a.act, 7), 'aa.....'); // 1 grows (0.01), 2 fails (0.5)
  const b = selectSeed([0.5, 0.05, 0.05, 0.7, 0.2, 0.6], pts(6, [[0, 1]]), C);
  t.is(bkgStr(b.bkg), '...BBB');
  t.is(actClass(b.act, 6), 'bbb...');
});

test('selectSeed: between points with zero, one and several confident background snippets', (t) => {
  // zero marked: argmax alone is background; both points grow towards it
  const z = selectSeed([0.5, 0.05, 0.3, 0.9, 0.05, 0.05, 0.5], pts(7, [[0, 0], [6, 1]]), C);
  t.is(bkgStr(z.bkg).slice(1, 6), '..B..');
  t.is(actClass(z.act, 7), 'aa..bbb');
  // one marked: it (the argmax) alone
  const o = selectSeed([0.5, 0.05, 0.96, 0.5, 0.05, 0.5], pts(6, [[0, 0], [5, 0]]), C);
  t.is(bkgStr(o.bkg).slice(1, 5), '.B..');
  t.is(actClass(o.act, 6), 'aa..aa');
  // several marked: the span from the first to the last
  const s = selectSeed([0.5, 0.05, 0.96, 0.2, 0.97, 0.01, 0.5], pts(7, [[0, 0], [6, 1]]), C);
  t.is(bkgStr(s.bkg).slice(1, 6), '.BBB.');
  t.is(actClass(s.act, 7), 'aa...bb');
  // adjacent points: nothing between them
  const adj = selectSeed([0.5, 0.5, 0.99], pts(3, [[0, 0], [1, 1]]), C);
  t.is(bkgStr(adj.bkg), '..B');
});

test('selectSeed: no points, a point at each end, and a background seed blocks growth', (t) => {
  const none = selectSeed([0.99, 0.01], new Float32Array(4), C);
  t.is(bkgStr(none.bkg), '..');
  const ends = selectSeed([0.2, 0.3, 0.2], pts(3, [[0, 0], [2, 1]]), C);
  t.is(bkgStr(ends.bkg), '.B.');
  t.deepEqual(regionRows(Float32Array.of(1, 1, 1), 3), [], 'a constant sequence has no region');
  // a run reaching the end of the video loses its last snippet (the reference's run extraction)
  t.deepEqual(regionRows(Float32Array.of(0, 1, 1), 3), [1]);
  t.deepEqual(regionRows(Float32Array.of(1, 0, 1), 3), [0], 'a one-snippet run at the end is skipped');
  t.deepEqual(regionRows(Float32Array.of(1, 1, 0, 0, 1, 1, 0), 7), [0, 1, 4, 5]);
});

/**
 * The region extraction as the reference's utils.extract_region_feat states it, on the changes of
 * the sequence: d = seq[1:] - seq[:-1]; the indices where d != 0; -1 in front when the first change
 * is not a rise, T - 2 behind when the last is not a fall; runs (idx[2i] + 1 .. idx[2i + 1]),
 * those with idx[2i + 1] - idx[2i] < 1 skipped.
 */
function regionRowsByChanges(seq: number[]): number[] {
  const d = seq.slice(1).map((v, i) => v - seq[i]);
  let idx = d.map((v, i) => (v !== 0 ? i : -2)).filter((i) => i !== -2);
  if (!idx.length) return [];
  if (d[idx[0]] !== 1) idx = [-1, ...idx];
  if (d[idx[idx.length - 1]] !== -1) idx = [...idx, d.length - 1];
  const rows: number[] = [];
  for (let i = 0; i < Math.floor(idx.length / 2); i++) {
    if (idx[2 * i + 1] - idx[2 * i] < 1) continue;
    for (let r = idx[2 * i] + 1; r < idx[2 * i + 1] + 1; r++) rows.push(r);
  }
  return rows;
}

test('regionRows equals the change-based run extraction on random seed sequences', (t) => {
  const rng = new Rng(21);
  for (let k = 0; k < 500; k++) {
    const T = 1 + rng.int(12);
    const seq = Array.from({ length: T }, () => (rng.uniform() < 0.5 ? 1 : 0));
    t.deepEqual(regionRows(Float32Array.from(seq), T), regionRowsByChanges(seq), seq.join(''));
  }
});

test('focal frame loss equals its float64 definition, gradient through the focal weight too', (t) => {
  const rng = new Rng(4);
  const T = 6;
  const Cp1 = 3;
  const p = rng.uniformArray(T * Cp1, 0.05, 0.95);
  const rows = [1, 4, 5];
  const target = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const ref = (pp: Float64Array): number => {
    let s = 0;
    rows.forEach((r, i) => {
      for (let c = 0; c < Cp1; c++) {
        const x = pp[r * Cp1 + c];
        const y = target[i * Cp1 + c];
        const pt = y ? x : 1 - x;
        s += (1 - pt) ** 2 * -(y * Math.log(x) + (1 - y) * Math.log(1 - x));
      }
    });
    return s / (rows.length + 1e-6);
  };
  tidy(() => {
    const x = Tensor.from(p, [T, Cp1]);
    x.requiresGrad = true;
    const l = focalFrameLoss(x, rows, target);
    t.true(Math.abs(l.item() - ref(Float64Array.from(p))) < 1e-5 * ref(Float64Array.from(p)));
    backward(l);
    const g = x.grad!.toArray();
    const num = Array.from(p, (_, j) => {
      const a = Float64Array.from(p);
      const b = Float64Array.from(p);
      a[j] += 1e-6;
      b[j] -= 1e-6;
      return (ref(a) - ref(b)) / 2e-6;
    });
    t.true(relErr(g, num) < 1e-4, `grad rel err ${relErr(g, num)}`);
    x.grad!.dispose();
  });
});

test('contrastive loss equals eq. 7 in float64', (t) => {
  const rng = new Rng(8);
  const T = 7;
  const D = 5;
  const Cn = 3;
  const E = rng.uniformArray(T * D, -1, 1);
  const M = rng.uniformArray(Cn * D, -1, 1);
  const act = new Float32Array(T * Cn);
  act[1 * Cn + 0] = act[2 * Cn + 0] = act[5 * Cn + 2] = 1;
  const bkgSeed = Float32Array.from([1, 0, 0, 1, 1, 0, 0]);
  const norm = (v: Float64Array): Float64Array => {
    const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return v.map((x) => x / n);
  };
  const row = (a: Float32Array, r: number, w: number): Float64Array => Float64Array.from(a.subarray(r * w, r * w + w));
  const s = (x: Float64Array, m: Float64Array): number => Math.exp(norm(x).reduce((acc, v, i) => acc + v * norm(m)[i], 0) / 0.1);
  const meanSim = (rows: number[], k: number): number => rows.reduce((acc, r) => acc + s(row(E, r, D), row(M, k, D)), 0) / rows.length;
  let ref = 0;
  for (const [c, rows] of [[0, [1, 2]], [2, [5]]] as [number, number[]][]) {
    const a = [0, 1, 2].map((k) => meanSim(rows, k));
    const bc = meanSim([0, 3, 4], c);
    ref += 0.5 * -Math.log(a[c] / (a[0] + a[1] + a[2])) + 0.5 * -Math.log(a[c] / (a[c] + bc));
  }
  ref /= 2;
  tidy(() => {
    const got = contrastiveLoss(Tensor.from(E, [T, D]), Tensor.from(M, [Cn, 1, D]), { act, bkg: bkgSeed }, [0, 2], Cn).item();
    t.true(Math.abs(got - ref) < 1e-5 * Math.abs(ref), `${got} vs ${ref}`);
  });
});

test('memory update: momentum mean of the action-seed features of each class present', (t) => {
  tidy(() => {
    const mem = Tensor.from([1, 1, 2, 2], [2, 1, 2]);
    const E = Tensor.from([10, 20, 30, 40, 50, 60], [3, 2]);
    const act = Float32Array.from([1, 0, 1, 0, 0, 1]);
    updateMemory(mem, E, { act, bkg: new Float32Array(3) }, Float32Array.of(1, 0), 0.5);
    t.deepEqual(Array.from(mem.toArray()), [0.5 * 1 + 0.5 * 20, 0.5 * 1 + 0.5 * 30, 2, 2]);
  });
});

test('stage-1 model: output shapes, video scores and PyTorch parameter names (SPEC §8)', (t) => {
  const model = new Stage1Model({ featureDim: 16, numClasses: 3 }, new Rng(1));
  const names = [...model.stateDict().keys()];
  for (const n of [
    'memory.proto_vectors', 'encoder.RAB.0.conv_query.weight', 'encoder.RAB.1.conv_value.bias', 'encoder.RAB.0.self_atten.in_proj_weight',
    'encoder.RAB.1.self_atten.out_proj.bias', 'encoder.RAB.0.linear1.weight', 'encoder.RAB.0.norm2.bias',
    'encoder.feature_embedding.0.weight', 'classifier.1.weight',
  ])
    t.true(names.includes(n), n);
  t.false(names.includes('classifier.1.bias'));
  t.deepEqual([...model.stateDict().get('classifier.1.weight')!.shape], [4, 16, 1]);
  tidy(() => {
    model.eval();
    const x = Tensor.from(new Rng(2).uniformArray(9 * 16, -1, 1), [9, 16]);
    const out = model.forward(x);
    t.deepEqual([...out.casFuse.shape], [9, 4]);
    t.deepEqual([...out.vidScore.shape], [3]);
    const casS = out.casS.toArray();
    const top1 = [0, 1, 2].map((c) => Math.max(...[...Array(9).keys()].map((r) => casS[r * 3 + c])));
    t.true(relErr(out.vidScore.toArray(), top1) < 1e-6, 'k = max(1, 9 // 8) = 1: the top-1 value');
    const f = out.casFuse.toArray();
    const b = out.bkg.toArray();
    for (let r = 0; r < 9; r++) t.true(Math.abs(f[r * 4] - casS[r * 3] * (1 - b[r])) < 1e-6);
  });
  model.dispose();
});

test('stage-1 model by hand, default prototype layout: one token per class, attended with the snippets', (t) => {
  // D = 4, C = 2, T = 1, one RAB with one head, every dropout off. Weights chosen so each step
  // can be worked out on paper:
  //   conv_query = conv_key = 0, all biases 0   -> equal scores: each row attends uniformly
  //   in_proj's v slice = I, out_proj = I       -> attention output = mean of the (raw) tokens
  //   norm weights 1, biases 0; linear1 = linear2 = 0 -> the feed-forward adds 0
  //   feature_embedding: centre tap I           -> E = relu(norm2(norm1(x + a)))
  //   classifier rows: class 0 reads channel 0, class 1 channel 2, background -channel 3
  // memory [C, 1, D]: m0 = [6, 0, 0, 0], m1 = [0, 6, 0, 0]; snippet x = [0, 0, 0, 1.5].
  // Default layout, tokens x, m0, m1: a = (x + m0 + m1) / 3 = [2, 2, 0, 0.5]; x + a = [2, 2, 0, 2];
  // mean 1.5, deviations [0.5, 0.5, -1.5, 0.5], variance 0.75: norm1 = dev / sqrt(0.75 + eps);
  // norm2 of that (mean 0, variance 0.75 / (0.75 + eps)) divides by sqrt(that + eps); relu:
  // E = [e, e, 0, e] with e = 0.5 / sqrt(0.75 + eps) / sqrt(0.75 / (0.75 + eps) + eps) (about 0.57735)
  // scores: class 0 sigmoid(e), class 1 sigmoid(0) = 1/2, background sigmoid(-e).
  // (The reference's reshape layout makes the tokens [6, 0, 0, 0] and [0, 0, 6, 0]: class 1 would
  // read e there, and without the prototype tokens x + a = 2x, E = [0, 0, 0, e'].)
  const D = 4;
  const eps = 1e-5;
  const model = new Stage1Model(
    { featureDim: D, numClasses: 2, layers: 1, dropout: 0, rab: { heads: 1, feedForward: 2, dropout: 0, attentionDropout: 0 } },
    new Rng(5),
  );
  t.false(model.options.prototypeReshape, 'the default layout');
  const w = new Map([...model.stateDict()].map(([k, v]) => [k, { shape: [...v.shape], data: new Float32Array(v.size) }]));
  const set = (name: string, at: (number[] | number)[], values: number[]): void => {
    const p = w.get(name);
    if (!p) throw new Error(`no parameter ${name}`);
    at.forEach((i, n) => {
      const idx = Array.isArray(i) ? i.reduce((a, x, d) => a * p.shape[d] + x, 0) : i;
      p.data[idx] = values[n];
    });
  };
  set('memory.proto_vectors', [[0, 0, 0], [1, 0, 1]], [6, 6]);
  for (let i = 0; i < D; i++) {
    set('encoder.RAB.0.self_atten.in_proj_weight', [[2 * D + i, i]], [1]);
    set('encoder.RAB.0.self_atten.out_proj.weight', [[i, i]], [1]);
    set('encoder.RAB.0.norm1.weight', [i], [1]);
    set('encoder.RAB.0.norm2.weight', [i], [1]);
    set('encoder.feature_embedding.0.weight', [[i, i, 1]], [1]);
  }
  set('classifier.1.weight', [[0, 0, 0], [1, 2, 0], [2, 3, 0]], [1, 1, -1]);
  model.loadStateDict(w);
  model.eval();
  const e = 0.5 / Math.sqrt(0.75 + eps) / Math.sqrt(0.75 / (0.75 + eps) + eps);
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  const want = {
    embedded: [e, e, 0, e],
    casS: [sig(e), 0.5],
    bkg: [sig(-e)],
    casP: [sig(e) * (1 - sig(-e)), 0.5 * (1 - sig(-e))],
  };
  const close = (got: ArrayLike<number>, exp: number[], what: string) =>
    t.true(got.length === exp.length && exp.every((v, i) => Math.abs(got[i] - v) < 1e-6), `${what}: ${Array.from(got)} vs ${exp}`);
  const x = [0, 0, 0, 1.5];
  tidy(() => {
    const out = model.forward(Tensor.from(x, [1, D]));
    close(out.embedded.toArray(), want.embedded, 'embedded');
    close(out.casS.toArray(), want.casS, 'cas_S');
    close(out.bkg.toArray(), want.bkg, 'background');
    close(out.casP.toArray(), want.casP, 'cas_P');
    close(out.casFuse.toArray(), [...want.casP, ...want.bkg], 'cas_fuse');
    close(out.vidScore.toArray(), want.casS, 'video scores (T = 1: top-1 = the snippet)');
  });
  // the inference path (q and k through the composed projections) gives the same numbers
  const s = scoreVideo(model, Float32Array.from(x), 1);
  close(s.casS, want.casS, 'scoreVideo cas_S');
  close(s.casP, want.casP, 'scoreVideo cas_P');
  model.dispose();
});
