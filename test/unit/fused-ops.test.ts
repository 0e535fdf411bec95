/**
 * The fused ops (one native call for several ops): each against the separate ops it replaces, bit
 * for bit, forward and backward (what keeps training's numbers unchanged), and linear against a
 * float64 reference.
 */
import test, { ExecutionContext } from 'ava';
import * as ops from '../../lib/ops';
import { Tensor, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { Rng } from '../../lib/util/rng';

/** out and the inputs' gradients under sum(out * R). */
function run(shapes: number[][], f: (xs: Tensor[]) => Tensor, seed = 1, lo = -1, hi = 1): Float32Array[] {
  return tidy(() => {
    const rng = new Rng(seed);
    const xs = shapes.map((s) => {
      const x = Tensor.from(rng.uniformArray(s.reduce((a, b) => a * b, 1), lo, hi), s);
      x.requiresGrad = true;
      return x;
    });
    const out = f(xs);
    const R = Tensor.from(new Rng(seed + 1).uniformArray(out.size, -1, 1), out.shape);
    backward(ops.sumAll(ops.mul(out, R)));
    const res = [out.toArray(), ...xs.map((x) => x.grad!.toArray())];
    xs.forEach((x) => x.grad!.dispose());
    return res;
  });
}

function sameBits(t: ExecutionContext, got: Float32Array[], want: Float32Array[]): void {
  t.is(got.length, want.length);
  got.forEach((g, i) => t.deepEqual(Buffer.from(g.buffer, g.byteOffset, g.byteLength), Buffer.from(want[i].buffer, want[i].byteOffset, want[i].byteLength), `output ${i}`));
}

test('linear (bias, relu, dropout) is matmul + add + relu + dropout, bit for bit', (t) => {
  for (const [M, K, N] of [[1, 1, 1], [5, 7, 3], [300, 64, 128]])
    for (const relu of [false, true])
      for (const p of [0, 0.3]) {
        const want = run([[M, K], [N, K], [N]], ([x, w, b]) => {
          let y = ops.add(ops.matmul(x, w, { transB: true }), b);
          if (relu) y = ops.relu(y);
          return p ? ops.dropout(y, p, true, 17) : y;
        });
        sameBits(t, run([[M, K], [N, K], [N]], ([x, w, b]) => ops.linear(x, w, b, { relu, dropout: p ? { p, seed: 17 } : null })), want);
      }
});

test('linear against a float64 reference', (t) => {
  const rng = new Rng(2);
  const [M, K, N] = [4, 6, 3];
  const x = rng.uniformArray(M * K, -1, 1), w = rng.uniformArray(N * K, -1, 1), b = rng.uniformArray(N, -1, 1);
  const got = ops.linear(Tensor.from(x, [M, K]), Tensor.from(w, [N, K]), Tensor.from(b, [N]), { relu: true }).toArray();
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = b[j];
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[j * K + k];
      t.true(Math.abs(got[i * N + j] - Math.max(0, s)) < 1e-5, `(${i}, ${j})`);
    }
});

test('a leaf used once takes its gradient straight into .grad, with the bits of an addition', (t) => {
  const twoPasses = (fused: boolean): Float32Array =>
    tidy(() => {
      const rng = new Rng(5);
      const x = Tensor.from(rng.uniformArray(40 * 300, -1, 1), [300, 40]);
      const w = Tensor.from(rng.uniformArray(8 * 40, -1, 1), [8, 40]);
      w.requiresGrad = true;
      for (let i = 0; i < 3; i++)
        backward(ops.sumAll(fused ? ops.linear(x, w, null) : ops.matmul(ops.affine(x, 1, 0), w, { transB: true })));
      const g = w.grad!.toArray();
      w.grad!.dispose();
      return g;
    });
  sameBits(t, [twoPasses(true)], [twoPasses(false)]);
});

test('dropoutAdd, weightedSum and blend are their separate ops, bit for bit', (t) => {
  sameBits(t, run([[33, 65], [33, 65]], ([x, r]) => ops.dropoutAdd(x, r, 0.3, true, 5)), run([[33, 65], [33, 65]], ([x, r]) => ops.add(r, ops.dropout(x, 0.3, true, 5))));
  const w = [0.5, 1, -2, 0.25];
  sameBits(t, run([[3], [3], [3], [3]], (xs) => ops.weightedSum(xs, w)),
    run([[3], [3], [3], [3]], ([a, b, c, d]) => ops.add(ops.add(ops.mulScalar(a, w[0]), ops.mulScalar(b, w[1])), ops.add(ops.mulScalar(c, w[2]), ops.mulScalar(d, w[3])))));
  const y = Tensor.from([1, 0, 1, 0, 0], [5]);
  sameBits(t, run([[5], [5]], ([a, b]) => ops.blend(a, b, y)), run([[5], [5]], ([a, b]) => ops.add(ops.mul(a, y), ops.mul(b, ops.affine(y, -1, 1)))));
  t.throws(() => ops.dropout(Tensor.zeros([2]), 1 - 2 ** -26, true, 1), { message: /rounds to 1 in float32/ });
});

test('focalBce, similarityMean and contrastiveTerms are their separate ops, bit for bit', (t) => {
  const target = Float32Array.from({ length: 9 * 21 }, (_, i) => (i % 7 === 0 ? 1 : 0));
  const c = Tensor.from(target.map((v) => 1 - 2 * v), [9, 21]);
  const y = Tensor.from(target, [9, 21]);
  sameBits(t, run([[9, 21]], ([p]) => ops.focalBce(p, target, 1 / 9), 1, 0.05, 0.95),
    run([[9, 21]], ([p]) => { const o = ops.add(ops.mul(p, c), y); return ops.mulScalar(ops.bce(p, y, { weight: ops.mul(o, o), reduction: 'sum' }), 1 / 9); }, 1, 0.05, 0.95));
  const P = ops.l2Normalize(Tensor.from(new Rng(9).uniformArray(5 * 16, -1, 1), [5, 16]));
  const rows = [0, 3, 3, 11];
  sameBits(t, run([[12, 16]], ([E]) => ops.similarityMean(E, rows, P, 10)),
    run([[12, 16]], ([E]) => ops.mean(ops.exp(ops.mulScalar(ops.matmul(ops.l2Normalize(ops.gatherRows(E, rows)), P, { transB: true }), 10)), 0)));
  for (const classes of [[2], [0, 2, 4]]) {
    const shapes = [...classes.map(() => [5]), [5]];
    const separate = (xs: Tensor[]): Tensor => {
      const b = xs[xs.length - 1];
      const terms = classes.map((cl, k) => {
        const a = xs[k];
        const ac = ops.slice(a, 0, cl, cl + 1), bc = ops.slice(b, 0, cl, cl + 1), logAc = ops.log(ac);
        const lAct = ops.sub(ops.log(ops.sumAll(a).reshape([1])), logAc);
        const lBkg = ops.sub(ops.log(ops.add(ac, bc)), logAc);
        return ops.mulScalar(ops.add(lAct, lBkg), 0.5);
      });
      return ops.mulScalar(ops.sumAll(ops.concat(terms, 0)), 1 / 3);
    };
    sameBits(t, run(shapes, (xs) => ops.contrastiveTerms(xs.slice(0, -1), xs[xs.length - 1], classes, 1 / 3), 3, 0.5, 3), run(shapes, separate, 3, 0.5, 3));
  }
});

test('block_copy refuses accumulating into overlapping destination blocks, naming the op', (t) => {
  const { cpu } = require('../../lib/runtime/native') as typeof import('../../lib/runtime/native');
  const B = cpu();
  const dst = new B.NativeBuffer(10);
  const src = new B.NativeBuffer(10);
  t.throws(() => B.block_copy(dst, src, 2, 3, 2, 0, 3, 0, true), { message: /^block_copy: accumulate: the destination blocks overlap/ });
  t.notThrows(() => B.block_copy(dst, src, 2, 3, 3, 0, 3, 0, true));
  dst.dispose();
  src.dispose();
});
