/**
 * Every op's forward against a float64 reference and its backward against central finite
 * differences of that reference (test/helpers/gradcheck.ts), on several shapes including T = 1
 * and odd sizes.
 */
import test from 'ava';
import * as ops from '../../lib/ops';
import { checkOp, probeIndices, randArray } from '../helpers/gradcheck';
import * as R from '../helpers/ref';
import { dropoutScaleRef } from '../helpers/ref';
import { Rng } from '../../lib/util/rng';
import { Tensor } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { cpu } from '../../lib/runtime/native';

test('the gradient checks probe distinct elements: every element of small inputs, 64 distinct of larger ones', (t) => {
  const rng = new Rng(3);
  for (const size of [1, 5, 63, 64])
    t.deepEqual(probeIndices(size, 64, rng), [...Array(size).keys()], `size ${size}: all of them`);
  for (const size of [65, 100, 4096]) {
    for (let k = 0; k < 20; k++) {
      const idx = probeIndices(size, 64, rng);
      t.is(idx.length, 64);
      t.is(new Set(idx).size, 64, `size ${size}: no element probed twice`);
      t.true(idx.every((j) => Number.isInteger(j) && j >= 0 && j < size), `size ${size}: in range`);
    }
  }
  // 64 distinct of 65 leave out exactly one element (drawn with replacement, several are left out)
  const idx = probeIndices(65, 64, new Rng(9));
  t.is([...Array(65).keys()].filter((j) => !idx.includes(j)).length, 1);
});

const positive = (_: number, rng: Rng, n: number): Float64Array => randArray(rng, n, 0.2, 2);
const probs = (_: number, rng: Rng, n: number): Float64Array => randArray(rng, n, 0.05, 0.95);

for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [17, 33, 9], [40, 70, 65]])
  for (const ta of [false, true])
    for (const tb of [false, true])
      test(`matmul ${M}x${K}x${N} ta=${ta} tb=${tb}`, (t) =>
        checkOp(t, {
          name: 'matmul',
          shapes: [ta ? [K, M] : [M, K], tb ? [N, K] : [K, N]],
          forward: ([a, b]) => ops.matmul(a, b, { transA: ta, transB: tb }),
          ref: ([a, b]) => R.matmulRef(a, b, 1, M, N, K, ta, tb, true),
        }));

// Across the GEMM's blocks (MC = 120 rows, KC = 192 depths): full and partial 6-row / 16-column panels,
// depth tails of 1-7 after the 8-deep transposes of the packing, every transpose combination.
for (const [M, N, K] of [[130, 40, 200], [127, 33, 203], [12, 16, 8]])
  for (const ta of [false, true])
    for (const tb of [false, true])
      test(`matmul ${M}x${K}x${N} ta=${ta} tb=${tb} (across GEMM blocks), forward against float64`, (t) =>
        checkOp(t, {
          name: 'matmul',
          shapes: [ta ? [K, M] : [M, K], tb ? [N, K] : [K, N]],
          forward: ([a, b]) => ops.matmul(a, b, { transA: ta, transB: tb }),
          ref: ([a, b]) => R.matmulRef(a, b, 1, M, N, K, ta, tb, true),
          grad: [],
        }));

test('matmul batched [3, M, K] x [3, K, N] and shared weight [2, 4, M, K] x [K, N]', (t) => {
  checkOp(t, {
    name: 'bmm', shapes: [[3, 5, 6], [3, 6, 4]],
    forward: ([a, b]) => ops.matmul(a, b), ref: ([a, b]) => R.matmulRef(a, b, 3, 5, 4, 6, false, false, false),
  });
  checkOp(t, {
    name: 'bmm^T', shapes: [[3, 6, 5], [3, 4, 6]],
    forward: ([a, b]) => ops.matmul(a, b, { transA: true, transB: true }), ref: ([a, b]) => R.matmulRef(a, b, 3, 5, 4, 6, true, true, false),
  });
  checkOp(t, {
    name: 'shared', shapes: [[2, 4, 3, 5], [5, 7]],
    forward: ([a, b]) => ops.matmul(a, b), ref: ([a, b]) => R.matmulRef(a, b, 1, 24, 7, 5, false, false, true),
  });
});

const BIN: [string, (a: any, b: any) => any, (x: number, y: number) => number][] = [
  ['add', ops.add, (x, y) => x + y],
  ['sub', ops.sub, (x, y) => x - y],
  ['mul', ops.mul, (x, y) => x * y],
  ['div', ops.div, (x, y) => x / y],
];
for (const [name, f, g] of BIN)
  for (const [sa, sb] of [[[4, 5], [4, 5]], [[4, 5], [5]], [[3, 1, 5], [4, 1]], [[1], [2, 3]], [[1, 7], [1, 7]]])
    test(`${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, (t) =>
      checkOp(t, {
        name, shapes: [sa, sb], forward: ([a, b]) => f(a, b), ref: ([a, b]) => R.broadcastRef(a, sa, b, sb, g),
        draw: name === 'div' ? (i, rng, n) => (i === 1 ? randArray(rng, n, 0.5, 2) : randArray(rng, n)) : undefined,
      }));

const UN: [string, (x: any) => any, (x: number) => number, any?][] = [
  ['relu', ops.relu, (x) => Math.max(x, 0)],
  ['gelu', ops.gelu, (x) => 0.5 * x * (1 + R.erf(x / Math.SQRT2))],
  ['sigmoid', ops.sigmoid, (x) => 1 / (1 + Math.exp(-x))],
  ['exp', ops.exp, Math.exp],
  ['log', ops.log, Math.log, positive],
  ['tanh', ops.tanh, Math.tanh],
  ['sqrt', ops.sqrt, Math.sqrt, positive],
  ['neg', ops.neg, (x) => -x],
];
for (const [name, f, g, draw] of UN)
  for (const shape of [[1], [7, 3], [2, 65]])
    test(`${name} ${JSON.stringify(shape)}`, (t) =>
      checkOp(t, { name, shapes: [shape], forward: ([x]) => f(x), ref: ([x]) => x.map(g), draw }));

// relu is written as bit masks (native/cpu/elementwise.cc, relu_f / relu_df):
// exactly x > 0 ? x : +0 (NaN and -0 give +0) and dy * (x > 0 ? 1 : 0), the sign of a zero product
// included, over a vector body and its tail.
test('relu forward and backward: x > 0 ? x : +0 and dy * (x > 0), bit for bit, with zeros, negatives, NaN and the sign of zero', (t) => {
  const n = 1003;
  const rng = new Rng(7);
  const xs = Float32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? (i % 10 === 0 ? 0 : -0) : i === 7 ? NaN : rng.normal()));
  const dys = Float32Array.from({ length: n }, () => rng.normal());
  const x = Tensor.from(xs, [n]);
  x.requiresGrad = true;
  const y = ops.relu(x);
  const ys = y.toArray();
  for (let i = 0; i < n; i++) {
    const want = xs[i] > 0 ? xs[i] : 0;
    if (!Object.is(ys[i], want)) return t.fail(`forward, element ${i}: x ${xs[i]}: ${ys[i]}, expected ${want}`);
  }
  backward(y, Tensor.from(dys, [n]));
  const dx = x.grad!.toArray();
  for (let i = 0; i < n; i++) {
    const want = Math.fround(dys[i] * (xs[i] > 0 ? 1 : 0));
    if (!Object.is(dx[i], want)) return t.fail(`element ${i}: x ${xs[i]}, dy ${dys[i]}: ${dx[i]}, expected ${want}`);
  }
  t.pass();
});

test('affine / mulScalar / addScalar', (t) => {
  checkOp(t, { name: 'affine', shapes: [[5, 3]], forward: ([x]) => ops.affine(x, -2.5, 0.75), ref: ([x]) => x.map((v) => -2.5 * v + 0.75) });
  checkOp(t, { name: 'mulScalar', shapes: [[4]], forward: ([x]) => ops.mulScalar(x, 3), ref: ([x]) => x.map((v) => 3 * v) });
});

/**
 * layerNorm of rows of one element: x - mean is 0, so the output is the bias whatever x and the
 * weight (0 when the bias is 0), and the gradients are dx = 0, dweight = 0, dbias = g. Checked
 * exactly, and against central differences of the float64 reference (test/helpers/ref.ts); the
 * generic relative-error harness is not used since two of the three gradients are exactly 0.
 */
function layerNormSingle(t: import('ava').ExecutionContext, rows: number): void {
  const xs = [0.75, -1.5, 3, 0.125].slice(0, rows);
  while (xs.length < rows) xs.push(xs.length * 0.5 - 1);
  const w = [1.75];
  const g = xs.map((_, i) => 0.5 + i); // dL/dout
  for (const b of [0, -0.625]) {
    const x = Tensor.from(xs, [rows, 1]);
    const wt = Tensor.from(w, [1]);
    const bt = Tensor.from([b], [1]);
    for (const v of [x, wt, bt]) v.requiresGrad = true;
    const y = ops.layerNorm(x, wt, bt, 1e-5);
    const ref = R.layerNormRef(Float64Array.from(xs), Float64Array.from(w), Float64Array.from([b]), rows, 1, 1e-5);
    t.deepEqual([...ref], xs.map(() => b), 'the float64 reference gives the bias');
    t.deepEqual([...y.toArray()].map((v) => v + 0), xs.map(() => b + 0), `forward, bias ${b}`); // + 0: -0 and 0 alike
    backward(y, Tensor.from(g, [rows, 1]));
    // central differences of the float64 reference of L = sum(g * layerNorm(x, w, b))
    const L = (xx: number[], ww: number[], bb: number[]) =>
      R.layerNormRef(Float64Array.from(xx), Float64Array.from(ww), Float64Array.from(bb), rows, 1, 1e-5).reduce((s, v, i) => s + g[i] * v, 0);
    const h = 1e-5;
    const fd = (f: (d: number) => number) => (f(h) - f(-h)) / (2 * h);
    const numX = xs.map((_, i) => fd((d) => L(xs.map((v, j) => (j === i ? v + d : v)), w, [b])));
    const numW = fd((d) => L(xs, [w[0] + d], [b]));
    const numB = fd((d) => L(xs, w, [b + d]));
    t.true(numX.every((v) => v === 0), `the reference does not change with x: ${numX}`);
    t.is(numW, 0, 'nor with the weight');
    t.true(Math.abs(numB - g.reduce((s, v) => s + v, 0)) < 1e-9, `dbias by differences ${numB}`);
    t.true(x.grad!.toArray().every((v) => v === 0), `dx, bias ${b}: ${x.grad!.toArray()}`);
    t.true(wt.grad!.toArray()[0] === 0, `dweight, bias ${b}: ${wt.grad!.toArray()[0]}`);
    t.deepEqual([...bt.grad!.toArray()], [g.reduce((s, v) => s + v, 0)], `dbias, bias ${b}`);
  }
}

for (const [rows, cols] of [[1, 1], [1, 9], [6, 21], [13, 128]]) {
  test(`softmax / logSoftmax [${rows}, ${cols}]`, (t) => {
    checkOp(t, { name: 'softmax', shapes: [[rows, cols]], forward: ([x]) => ops.softmax(x), ref: ([x]) => R.softmaxRef(x, rows, cols, false) });
    checkOp(t, { name: 'logSoftmax', shapes: [[rows, cols]], forward: ([x]) => ops.logSoftmax(x), ref: ([x]) => R.softmaxRef(x, rows, cols, true) });
  });
  test(`layerNorm [${rows}, ${cols}]`, (t) => {
    if (cols === 1) {
      layerNormSingle(t, rows);
      return layerNormSingle(t, 3); // and several rows of one element
    }
    checkOp(t, {
      name: 'layerNorm', shapes: [[rows, cols], [cols], [cols]],
      forward: ([x, w, b]) => ops.layerNorm(x, w, b, 1e-5), ref: ([x, w, b]) => R.layerNormRef(x, w, b, rows, cols, 1e-5), bwdTol: 2e-4,
    });
  });
  test(`l2Normalize [${rows}, ${cols}]`, (t) =>
    checkOp(t, {
      name: 'l2Normalize', shapes: [[rows, cols]], forward: ([x]) => ops.l2Normalize(x),
      ref: ([x]) => {
        const out = new Float64Array(x.length);
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let j = 0; j < cols; j++) s += x[r * cols + j] ** 2;
          const n = Math.max(Math.sqrt(s), 1e-12);
          for (let j = 0; j < cols; j++) out[r * cols + j] = x[r * cols + j] / n;
        }
        return out;
      },
    }));
}

for (const [T, Cin, Cout, k, pad] of [[1, 3, 2, 3, 1], [1, 4, 5, 1, 0], [9, 5, 3, 3, 1], [17, 8, 6, 1, 0], [6, 3, 4, 3, 0]])
  for (const bias of [true, false])
    test(`conv1d T=${T} Cin=${Cin} Cout=${Cout} k=${k} pad=${pad} bias=${bias}`, (t) =>
      checkOp(t, {
        name: 'conv1d', shapes: bias ? [[T, Cin], [Cout, Cin, k], [Cout]] : [[T, Cin], [Cout, Cin, k]],
        forward: ([x, w, b]) => ops.conv1d(x, w, b ?? null, pad),
        ref: ([x, w, b]) => R.conv1dRef(x, w, b ?? null, T, Cin, Cout, k, pad),
      }));

for (const [L, D, H] of [[1, 4, 1], [5, 8, 2], [11, 12, 4], [23, 16, 8], [38, 64, 2]])
  test(`attention L=${L} D=${D} heads=${H}`, (t) =>
    checkOp(t, {
      name: 'attention', shapes: [[L, D], [L, D], [L, D]],
      forward: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, H, 0, 0),
      ref: ([q, k, v]) => R.attentionRef(q, k, v, L, D, H), bwdTol: 2e-4,
    }));

// the backward reads the mask back from the signs of the saved weights (for Pd = P * mask and dPd * mask)
for (const [L, D, H] of [[11, 12, 4], [23, 16, 8]])
  test(`attention L=${L} D=${D} heads=${H} with dropout 0.25: gradients against the float64 reference`, (t) =>
    checkOp(t, {
      name: 'attention', shapes: [[L, D], [L, D], [L, D]],
      forward: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, H, 0.25, 5),
      ref: ([q, k, v]) => R.attentionRef(q, k, v, L, D, H, 0.25, 5), bwdTol: 2e-4,
    }));

test('dropout masks are rng.h exactly over several parallel chunks (2 threads, 3 chunks of 2^14 and a tail)', (t) => {
  const { Tensor, tidy } = require('../../lib/tensor/tensor');
  const { setNumThreads, getNumThreads } = require('../../lib/runtime/native');
  const saved = getNumThreads();
  setNumThreads(2);
  try {
    tidy(() => {
      const n = 3 * 16384 + 13;
      const xs = new Rng(3).uniformArray(n, 0.5, 1.5);
      const x = Tensor.from(xs, [n]);
      const y = ops.dropout(x, 0.1, true, 1234).toArray();
      let bad = 0;
      for (let i = 0; i < n; i++) if (y[i] !== Math.fround(xs[i] * Math.fround(dropoutScaleRef(1234, i, 0.1)))) bad++;
      t.is(bad, 0, `${bad} of ${n} elements differ from x * dropout_scale`);
    });
  } finally {
    setNumThreads(saved);
  }
});

test('dropout masks are rng.h exactly: the dropout op and the attention weights', (t) => {
  const { Tensor, tidy } = require('../../lib/tensor/tensor');
  const rng = new Rng(12);
  tidy(() => {
    const n = 1003;
    const x = Tensor.from(rng.uniformArray(n, 0.5, 1.5), [n]);
    const y = ops.dropout(x, 0.3, true, 99).toArray();
    const xs = x.toArray();
    let dropped = 0;
    for (let i = 0; i < n; i++) {
      const want = xs[i] * dropoutScaleRef(99, i, 0.3);
      if (want === 0) dropped++;
      t.true(Math.abs(y[i] - want) <= 1e-6 * Math.abs(want), `dropout element ${i}: ${y[i]} vs ${want}`);
    }
    t.true(dropped > 200 && dropped < 400, `dropped ${dropped} of ${n}`);
    for (const [L, D, H] of [[1, 4, 1], [19, 12, 3]]) {
      const [q, k, v] = [0, 1, 2].map(() => rng.uniformArray(L * D, -1, 1));
      const T = (a: Float32Array) => Tensor.from(a, [L, D]);
      const out = ops.scaledDotProductAttention(T(q), T(k), T(v), H, 0.25, 5).toArray();
      const ref = R.attentionRef(Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), L, D, H, 0.25, 5);
      let err = 0;
      for (let i = 0; i < L * D; i++) err = Math.max(err, Math.abs(out[i] - ref[i]));
      t.true(err < 1e-5, `attention L=${L} with dropout: max abs error ${err}`);
    }
  });
});

test('attention without a gradient (no saved weights) gives the same output, with and without dropout', (t) => {
  const { Tensor, noGrad, tidy } = require('../../lib/tensor/tensor');
  const rng = new Rng(11);
  for (const [L, D, H, p] of [[1, 4, 1, 0], [37, 24, 4, 0], [37, 24, 4, 0.3]] as const)
    tidy(() => {
      const [q, k, v] = [0, 1, 2].map(() => Tensor.from(rng.uniformArray(L * D, -1, 1), [L, D]));
      q.requiresGrad = true;
      const saved = ops.scaledDotProductAttention(q, k, v, H, p, 7).toArray();
      const inference = noGrad(() => ops.scaledDotProductAttention(q, k, v, H, p, 7));
      t.is(inference.node, null);
      t.deepEqual(inference.toArray(), saved);
    });
});

// Fewer queries than keys (q [Lq, D], k, v [L, D]): the inference path (no saved weights) gives
// the training path's output bit for bit, and both are the first Lq rows of the float64 reference
// (the dropout mask numbered over the full L x L matrix). L = 1024 takes the CPU's two query
// blocks (960 rows, then the rest: native/cpu/attention.cc query_block, default budget).
test('attention with Lq < L: the inference path is the training path bit for bit, and the float64 reference\'s first rows', (t) => {
  const { Tensor, noGrad, tidy } = require('../../lib/tensor/tensor');
  const rng = new Rng(21);
  for (const [Lq, L, D, H, p] of [[1, 7, 12, 3, 0], [5, 7, 12, 3, 0], [5, 7, 12, 3, 0.3], [30, 37, 24, 4, 0.1], [1000, 1024, 16, 2, 0], [1000, 1024, 16, 2, 0.1]] as const)
    tidy(() => {
      const [q, k, v] = [Lq, L, L].map((rows) => rng.uniformArray(rows * D, -1, 1));
      const [tq, tk, tv] = [q, k, v].map((a, i) => Tensor.from(a, [i ? L : Lq, D]));
      tq.requiresGrad = true;
      const trained = ops.scaledDotProductAttention(tq, tk, tv, H, p, 7).toArray();
      const inferred = noGrad(() => ops.scaledDotProductAttention(tq, tk, tv, H, p, 7)).toArray();
      t.deepEqual(inferred, trained, `Lq=${Lq} L=${L} p=${p}: inference and training outputs`);
      if (L > 100) return; // the float64 reference is O(L^2 D): small cases only
      const ref = R.attentionRef(Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), L, D, H, p, 7, Lq);
      let err = 0;
      for (let i = 0; i < Lq * D; i++) err = Math.max(err, Math.abs(trained[i] - ref[i]));
      t.true(err < 1e-5, `Lq=${Lq} L=${L} p=${p}: max abs error ${err} against the float64 reference`);
    });
});

// Element (h, i, j) of the dropout mask is number (h L + i) L + j, and each block of 2^32 numbers
// has its own key (native/common/rng.h): shapes whose mask passes 2^32 inside a row (with Lq < L
// the [H, Lq, L] weights stay small). Read back exactly: the upstream gradient is zero but for the
// crossing row i, so dV of head h is P[h, i, :] * mask * g, zero exactly where the mask drops.
// The rows of the heads below, across and above 2^32 are each checked against rng.h's definition.
// (R.MASK_CROSSING: the shapes, shared with the CUDA suite.)
test('attention dropout masks across element 2^32 of the [H, L, L] numbering: rng.h exactly, and the float64 output', (t) => {
  const { Tensor, noGrad, tidy } = require('../../lib/tensor/tensor');
  const { backward } = require('../../lib/tensor/autograd');
  const p = 0.5, seed = 31;
  for (const { Lq, L, H, dh, row, head } of R.MASK_CROSSING)
    tidy(() => {
      const D = H * dh;
      const base = (head * L + row) * L;
      t.true(base < 2 ** 32 && base + L > 2 ** 32, 'the row crosses 2^32');
      const rng = new Rng(L);
      const [q, k, v] = [Lq, L, L].map((rows) => rng.uniformArray(rows * D, -1, 1));
      const [tq, tk, tv] = [q, k, v].map((a, i) => Tensor.from(a, [i ? L : Lq, D]));
      for (const x of [tq, tk, tv]) x.requiresGrad = true;
      const out = ops.scaledDotProductAttention(tq, tk, tv, H, p, seed);
      const g = new Float32Array(Lq * D);
      g.set(rng.uniformArray(D, 0.5, 1.5), row * D);
      backward(out, Tensor.from(g, [Lq, D]));
      const dv = tv.grad.toArray();
      for (let h = 0; h < H; h++) {
        let bad = 0, dropped = 0;
        for (let j = 0; j < L; j++) {
          const drop = dropoutScaleRef(seed, (h * L + row) * L + j, p) === 0;
          if (drop) dropped++;
          for (let c = 0; c < dh; c++) if ((dv[j * D + h * dh + c] === 0) !== drop) bad++;
        }
        t.is(bad, 0, `L=${L} head ${h} row ${row}: ${bad} elements of dV disagree with rng.h's mask`);
        t.true(Math.abs(dropped / L - p) < 0.02, `L=${L} head ${h}: dropped ${dropped} of ${L}`);
      }
      const got = out.toArray();
      t.deepEqual(noGrad(() => ops.scaledDotProductAttention(tq, tk, tv, H, p, seed)).toArray(), got, 'the inference path');
      // the float64 reference of the crossing row (every head)
      const one = R.attentionRef(Float64Array.from(q.subarray(0, (row + 1) * D)), Float64Array.from(k), Float64Array.from(v), L, D, H, p, seed, row + 1);
      let err = 0;
      for (let c = 0; c < D; c++) err = Math.max(err, Math.abs(got[row * D + c] - one[row * D + c]));
      t.true(err < 1e-5, `L=${L}: row ${row}, max abs error ${err} against the float64 reference`);
    });
});

for (const shape of [[5], [3, 4], [2, 3, 5], [1, 1, 1]])
  for (let axis = 0; axis < shape.length; axis++)
    for (const kind of ['sum', 'mean', 'max'] as const)
      test(`${kind} axis ${axis} of ${JSON.stringify(shape)}`, (t) => {
        const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
        const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
        checkOp(t, { name: kind, shapes: [shape], forward: ([x]) => ops[kind](x, axis), ref: ([x]) => R.reduceRef(x, outer, shape[axis], inner, kind) });
      });

// max's kernel picks with masks in AVX2 lanes (8 columns at a time, then a scalar tail): the same
// values and indices as the plain rule (strictly greater replaces, so the first of equal maxima
// wins; a NaN never replaces, and a NaN in row 0 stays), checked on the addon directly (the op
// refuses NaN inputs), with ties and NaNs planted, for widths around the vector length.
test('max over an axis: the plain rule\'s values and argmax, ties and NaN, every tail width', (t) => {
  const B = cpu();
  const rng = new Rng(11);
  for (const inner of [1, 7, 8, 9, 16, 17, 256])
    for (const len of [1, 2, 8, 13]) {
      const outer = 3;
      const x = Float32Array.from({ length: outer * len * inner }, () => Math.round(rng.range(-3, 3))); // small integers: many ties
      for (let i = 0; i < x.length; i += 11) x[i] = NaN;
      const want = new Float32Array(outer * inner), wantArg = new Float32Array(outer * inner);
      for (let o = 0; o < outer; o++)
        for (let j = 0; j < inner; j++) {
          let m = x[o * len * inner + j], a = 0;
          for (let l = 1; l < len; l++) {
            const v = x[(o * len + l) * inner + j];
            if (v > m) (m = v), (a = l);
          }
          want[o * inner + j] = m;
          wantArg[o * inner + j] = a;
        }
      const [xb, out, arg] = [Tensor.from(x, [x.length]), Tensor.empty([outer * inner]), Tensor.empty([outer * inner])];
      B.reduce_forward(2, out.buffer, arg.buffer, xb.buffer, outer, len, inner);
      t.deepEqual(out.toArray(), want, `values, inner ${inner}, len ${len}`);
      t.deepEqual(arg.toArray(), wantArg, `argmax, inner ${inner}, len ${len}`);
      for (const z of [xb, out, arg]) z.dispose();
    }
});

// maxOver's range read in place (axis_len, start) by the addon's kernel, against the rule
// (R.maxRangeRef) bit for bit: ties, +-0, infinities, NaN in the range and at its start, for widths
// around the AVX2 vector length.
test('max over a range of the axis: the rule\'s values (bits) and argmax, with ties and NaN at the range start', (t) => {
  const B = cpu();
  for (const [outer, axisLen, inner, start, len] of [[3, 20, 7, 0, 20], [3, 20, 9, 5, 12], [2, 80, 40, 10, 50], [4, 300, 64, 17, 200], [2, 13, 17, 12, 1]]) {
    const x = R.maxCases(outer, axisLen, inner, start, len, outer * 1000 + axisLen);
    const want = R.maxRangeRef(x, outer, axisLen, inner, start, len);
    const [xb, out, arg] = [Tensor.from(x, [x.length]), Tensor.empty([outer * inner]), Tensor.empty([outer * inner])];
    B.reduce_forward(2, out.buffer, arg.buffer, xb.buffer, outer, len, inner, axisLen, start);
    const what = `[${outer}, ${axisLen}, ${inner}] positions [${start}, ${start + len})`;
    t.deepEqual(new Uint32Array(out.toArray().buffer), new Uint32Array(want.out.buffer), `values, ${what}`);
    t.deepEqual(arg.toArray(), want.arg, `argmax, ${what}`);
    for (const z of [xb, out, arg]) z.dispose();
  }
});

// maxOver reads the range in place (reduce_forward's axis_len, start): the values and the gradient
// of max(slice(x)), bit for bit, on every axis; its gradient is a BlockGrad (zero outside the range).
test('maxOver(x, axis, start, end) equals max(slice(x, axis, start, end), axis), values and gradient', (t) => {
  const shape = [5, 12, 7];
  const x0 = new Rng(5).uniformArray(5 * 12 * 7, -1, 1);
  for (let axis = 0; axis < 3; axis++)
    for (const [a, b] of [[0, 2], [2, 10], [10, 12], [0, 12], [3, 4]].filter(([, e]) => e <= shape[axis])) {
      const run = (fast: boolean): [Float32Array, Float32Array] => {
        const x = Tensor.from(x0, shape);
        x.requiresGrad = true;
        const y = fast ? ops.maxOver(x, axis, a, b) : ops.max(ops.slice(x, axis, a, b), axis);
        backward(ops.sumAll(ops.mul(y, Tensor.from(new Rng(9).uniformArray(y.size, -1, 1), y.shape))));
        return [y.toArray(), x.grad!.toArray()];
      };
      const [yf, gf] = run(true);
      const [ys, gs] = run(false);
      t.deepEqual(yf, ys, `values, axis ${axis}, [${a}, ${b})`);
      t.deepEqual(gf, gs, `gradient, axis ${axis}, [${a}, ${b})`);
    }
  const x = Tensor.zeros([2, 3]);
  t.throws(() => ops.maxOver(x, 1, 2, 2), { message: /max: positions \[2, 2\) are not a non-empty range of axis 1 of \[2, 3\]/ });
  t.throws(() => ops.maxOver(x, 1, 1, 4), { message: /positions \[1, 4\)/ });
});

for (const [T, C, k] of [[1, 3, 1], [8, 4, 1], [17, 5, 2], [40, 21, 5]])
  test(`topkMean T=${T} C=${C} k=${k}`, (t) =>
    checkOp(t, { name: 'topkMean', shapes: [[T, C]], forward: ([x]) => ops.topkMean(x, k), ref: ([x]) => R.topkMeanRef(x, T, C, k) }));

test('gatherRows, concat, slice, transpose2d', (t) => {
  const idx = [2, 0, 2, 4, 1];
  checkOp(t, {
    name: 'gatherRows', shapes: [[5, 3]], forward: ([x]) => ops.gatherRows(x, idx),
    ref: ([x]) => Float64Array.from(idx.flatMap((i) => [x[i * 3], x[i * 3 + 1], x[i * 3 + 2]])),
  });
  checkOp(t, {
    name: 'concat0', shapes: [[2, 3], [1, 3], [4, 3]], forward: (xs) => ops.concat(xs, 0),
    ref: (xs) => Float64Array.from([...xs[0], ...xs[1], ...xs[2]]),
  });
  checkOp(t, {
    name: 'concat1', shapes: [[2, 3], [2, 1]], forward: (xs) => ops.concat(xs, 1),
    ref: ([a, b]) => Float64Array.from([a[0], a[1], a[2], b[0], a[3], a[4], a[5], b[1]]),
  });
  checkOp(t, {
    name: 'slice', shapes: [[3, 5]], forward: ([x]) => ops.slice(x, 1, 1, 4),
    ref: ([x]) => Float64Array.from([0, 1, 2].flatMap((r) => [x[r * 5 + 1], x[r * 5 + 2], x[r * 5 + 3]])),
  });
  checkOp(t, {
    name: 'transpose2d', shapes: [[3, 7]], forward: ([x]) => ops.transpose2d(x),
    ref: ([x]) => Float64Array.from([...Array(21).keys()].map((i) => x[(i % 3) * 7 + Math.floor(i / 3)])),
  });
});

test('losses: bce, smoothL1, mse (none / mean / sum)', (t) => {
  const bceRef = (p: number, y: number): number => -(y * Math.max(Math.log(p), -100) + (1 - y) * Math.max(Math.log(1 - p), -100));
  const drawBce = (i: number, rng: Rng, n: number): Float64Array => (i === 0 ? randArray(rng, n, 0.05, 0.95) : randArray(rng, n, 0, 1));
  checkOp(t, { name: 'bce', shapes: [[4, 5], [4, 5]], grad: [0], draw: drawBce, forward: ([p, y]) => ops.bce(p, y, { reduction: 'none' }), ref: ([p, y]) => p.map((v, i) => bceRef(v, y[i])) });
  checkOp(t, { name: 'bce-mean', shapes: [[7], [7]], grad: [0], draw: drawBce, forward: ([p, y]) => ops.bce(p, y), ref: ([p, y]) => Float64Array.of(p.reduce((s, v, i) => s + bceRef(v, y[i]), 0) / 7) });
  checkOp(t, {
    name: 'bce-weighted-sum', shapes: [[6], [6], [6]], grad: [0], draw: (i, rng, n) => (i === 2 ? randArray(rng, n, 0, 2) : drawBce(i, rng, n)),
    forward: ([p, y, w]) => ops.bce(p, y, { weight: w, reduction: 'sum' }), ref: ([p, y, w]) => Float64Array.of(p.reduce((s, v, i) => s + w[i] * bceRef(v, y[i]), 0)),
  });
  const sl1 = (d: number): number => (Math.abs(d) < 1 ? 0.5 * d * d : Math.abs(d) - 0.5);
  checkOp(t, { name: 'smoothL1', shapes: [[9], [9]], draw: (_, rng, n) => randArray(rng, n, -2, 2), forward: ([a, b]) => ops.smoothL1(a, b, { reduction: 'none' }), ref: ([a, b]) => a.map((v, i) => sl1(v - b[i])) });
  checkOp(t, { name: 'mse', shapes: [[3, 3], [3, 3]], forward: ([a, b]) => ops.mse(a, b), ref: ([a, b]) => Float64Array.of(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / 9) });
  t.pass();
});

for (const aligned of [false, true])
  for (const sr of [0, 2])
    test(`roiAlign1d aligned=${aligned} sampling=${sr} (fractional bounds, video edges)`, (t) => {
      const T = 11;
      const D = 3;
      const rois = [0.3, 4.7, -1.5, 2.2, 8.6, 11.9, 5, 5, 2.25, 9.75, 10.5, 12.5];
      checkOp(t, {
        name: 'roiAlign1d', shapes: [[T, D]], forward: ([x]) => ops.roiAlign1d(x, Float32Array.from(rois), { bins: 12, samplingRatio: sr, aligned }),
        ref: ([x]) => R.roiAlignRef(x, T, D, rois, 12, sr, aligned),
      });
    });
