/**
 * The autograd engine, scopes and memory, error paths, anomaly detection, Adam, initialisers,
 * checkpoints, and two small models that must learn.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ops from '../../lib/ops';
import { Tensor, noGrad, setDetectAnomaly, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { cpu } from '../../lib/runtime/native';
import { cuda, cudaAvailable } from '../../lib/runtime/backend';
import { Adam, Conv1d, LayerNorm, Linear, Module, MultiheadAttention, Parameter, Dropout } from '../../lib/nn';
import { loadSafetensors, saveSafetensors } from '../../lib/io/safetensors';
import { Rng } from '../../lib/util/rng';

const live = (): number => cpu().memory_stats().liveBytes;

test('gradients accumulate across backward passes until zeroGrad', (t) => {
  const w = Parameter.create(Float32Array.of(1, 2, 3), [3]);
  const x = Tensor.from([0.5, -1, 2], [3]);
  for (let i = 0; i < 3; i++) tidy(() => backward(ops.sumAll(ops.mul(w, x))));
  t.deepEqual(Array.from(w.grad!.toArray()), [1.5, -3, 6]);
  const opt = new Adam([w], { lr: 0.1 });
  opt.zeroGrad();
  t.deepEqual(Array.from(w.grad!.toArray()), [0, 0, 0]);
  opt.dispose();
  w.dispose();
  x.dispose();
});

test('a tensor used twice gets the sum of both gradients; noGrad records nothing', (t) => {
  const w = Parameter.create(Float32Array.of(3), [1]);
  tidy(() => backward(ops.sumAll(ops.add(ops.mul(w, w), w)))); // d/dw (w^2 + w) = 2w + 1 = 7
  t.is(w.grad!.item(), 7);
  const y = noGrad(() => ops.mul(w, w));
  t.is(y.node, null);
  y.dispose();
  w.grad!.dispose();
  w.dispose();
});

test('tidy frees intermediates and keeps the result; disposed tensors throw on use', (t) => {
  const before = live();
  const kept = tidy(() => {
    const a = Tensor.zeros([100, 100]);
    const b = ops.add(a, a);
    return ops.mul(b, b);
  });
  t.is(live(), before + 100 * 100 * 4);
  kept.dispose();
  t.is(live(), before);
  t.throws(() => kept.toArray(), { message: /disposed/ });
  t.throws(() => cpu().affine(kept.buffer, kept.buffer, 1, 1, 0), { message: /disposed/ });
});

test('outputs allocated without a fill pass (Tensor.empty) are written whole: the same results over NaN-filled cached blocks', (t) => {
  const B = cpu();
  t.is(new B.NativeBuffer(5, false).size, 5);
  t.deepEqual(Array.from(Tensor.empty([2, 3]).shape), [2, 3]);
  // every 64-byte size class up to 16 KiB, eight blocks each, back in the cache holding `value`
  const prime = (value: number): void => {
    const bufs = [];
    for (let n = 16; n <= 4096; n += 16) for (let i = 0; i < 8; i++) bufs.push(new B.NativeBuffer(n, false));
    for (const b of bufs) {
      b.fill(value);
      b.dispose();
    }
  };
  const run = (): number[][] =>
    tidy(() => {
      const rng = new Rng(8);
      const P = (shape: number[]): Tensor => {
        const p = Tensor.from(rng.uniformArray(shape.reduce((a, b) => a * b, 1), -1, 1), shape);
        p.requiresGrad = true;
        return p;
      };
      const [x, w, wc, bc, lw, lb] = [P([20, 24]), P([40, 24]), P([24, 24, 3]), P([24]), P([24]), P([24])];
      const h = ops.conv1d(x, wc, bc, 1); // out, dx, dw
      const a = ops.scaledDotProductAttention(h, x, h, 4, 0.2, 3); // out, probs, dq, dk, dv
      const n = ops.layerNorm(ops.add(a, ops.dropout(ops.relu(h), 0.3, true, 4)), lw, lb);
      const y = ops.softmax(ops.matmul(ops.affine(n, 2, 0.5), w, { transB: true })); // matmul out, da, db
      backward(ops.sumAll(ops.mul(y, ops.sigmoid(y))));
      return [y, x.grad!, w.grad!, wc.grad!, bc.grad!, lw.grad!, lb.grad!].map((g) => Array.from(g.toArray()));
    });
  prime(0);
  const zeroed = run();
  prime(NaN);
  const stale = run();
  t.true(zeroed.every((g) => g.every(Number.isFinite)));
  t.deepEqual(stale, zeroed);
});

test('detach writes its copy whole (no zero fill): exact over NaN-filled cached blocks', (t) => {
  const B = cpu();
  const bufs = [];
  for (let i = 0; i < 8; i++) bufs.push(new B.NativeBuffer(24, false));
  for (const x of bufs) {
    x.fill(NaN);
    x.dispose();
  }
  const x = Tensor.from(Float32Array.from({ length: 24 }, (_, i) => i + 1), [6, 4]);
  t.deepEqual(Array.from(x.detach().toArray()), Array.from({ length: 24 }, (_, i) => i + 1));
});

test('1,000 training-like steps keep native and resident memory flat', (t) => {
  const rng = new Rng(3);
  const lin = new Linear(64, 32, rng);
  const ln = new LayerNorm(32);
  const opt = new Adam([...lin.parameters(), ...ln.parameters()], { lr: 1e-3, weightDecay: 5e-4 });
  const x = Tensor.from(rng.uniformArray(50 * 64, -1, 1), [50, 64]).keep();
  const step = (): void =>
    tidy(() => {
      opt.zeroGrad();
      const y = ops.relu(ln.forward(lin.forward(x)));
      backward(ops.meanAll(ops.mul(y, y)));
      opt.step();
    });
  for (let i = 0; i < 50; i++) step(); // warm up allocators
  const native0 = live();
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 1000; i++) step();
  global.gc?.();
  const rss1 = process.memoryUsage().rss;
  t.is(live(), native0, 'native bytes after 1,000 steps');
  t.true(rss1 - rss0 < 32 * 1024 * 1024, `resident memory grew by ${((rss1 - rss0) / 1048576).toFixed(1)} MiB`);
  lin.dispose();
  ln.dispose();
  opt.dispose();
  x.dispose();
});

test('bad input throws an Error naming the op and shapes, never crashes', (t) => {
  tidy(() => {
    const a = Tensor.zeros([2, 3]);
    const b = Tensor.zeros([4, 5]);
    t.throws(() => ops.matmul(a, b), { message: /matmul: inner dimensions differ \(3 vs 4\).*\[2, 3\].*\[4, 5\]/ });
    t.throws(() => ops.add(a, b), { message: /add: shapes \[2, 3\] and \[4, 5\] cannot be broadcast/ });
    t.throws(() => ops.gatherRows(a, [0, 2]), { message: /gatherRows: index 2 at position 1 is out of range for \[2, 3\]/ });
    t.throws(() => ops.slice(a, 1, 2, 5), { message: /slice: range \[2, 5\) is invalid/ });
    t.throws(() => ops.conv1d(a, Tensor.zeros([4, 2, 3]), null, 1), { message: /conv1d: x has 3 channels/ });
    t.throws(() => ops.scaledDotProductAttention(a, a, a, 2), { message: /attention: 2 heads do not divide D = 3/ });
    t.throws(() => ops.topkMean(a, 3), { message: /topkMean: k must be an integer in \[1, T=2\]/ });
    t.throws(() => a.reshape([4]), { message: /reshape: cannot view \[2, 3\]/ });
    t.throws(() => Tensor.from([1, 2], [3]), { message: /Tensor.from: 2 values do not fill shape \[3\]/ });
    t.throws(() => Tensor.zeros([2, 3], 'gpu' as any), { message: /Expected 'cpu' or 'cuda' for device but received "gpu"/ });
    // the native layer checks on its own too (wrong argument types and sizes)
    t.throws(() => cpu().matmul_forward(a.buffer, a.buffer, b.buffer, 1, 2, 5, 3, false, false, 0, 0), { message: /^matmul_forward: argument 0 \(out\) holds 6 values but the op needs 10/ });
    t.throws(() => cpu().layernorm_forward(a.buffer, 'x'), { message: /^layernorm_forward: argument 6 \(rows\) must be a number/ });
    t.throws(() => cpu().gather_rows_forward(a.buffer, a.buffer, Int32Array.of(9), 2, 3), { message: /index 9 at position 0 is out of range/ });
    t.throws(() => cpu().softmax_forward(a.buffer, {}, 2, 3, false), { message: /argument 1 \(x\) must be a NativeBuffer/ });
  });
});

test('device cuda without the CUDA backend is a clear error; with it, tensors live there', (t) => {
  if (cudaAvailable()) {
    t.is(cuda().backend, 'cuda');
    const x = Tensor.from([1, -2, 3], [3], 'cuda');
    t.is(x.device, 'cuda');
    t.deepEqual(Array.from(ops.relu(x).toArray()), [1, 0, 3]);
    return;
  }
  // not built here, or built but without a usable GPU (test/gpu/cuda-load.test.ts)
  t.throws(() => cuda(), { message: /device 'cuda' (is not available|could not be loaded)/ });
  t.throws(() => Tensor.zeros([2], 'cuda'), { message: /device 'cuda' (is not available|could not be loaded)/ });
});

test('anomaly detection names the first op that produced NaN/Inf', (t) => {
  setDetectAnomaly(true);
  try {
    tidy(() => {
      const x = Tensor.from([1, -1, 4], [3]);
      const y = ops.sqrt(ops.addScalar(x, 0)); // sqrt(-1) = NaN
      t.fail(`no error for ${y}`);
    });
  } catch (e) {
    t.regex((e as Error).message, /^sqrt: produced NaN at flat index 1 of its output \[3\]/);
  } finally {
    setDetectAnomaly(false);
  }
});

test('Adam matches the PyTorch update rule (float64 reference, 5 steps)', (t) => {
  const rng = new Rng(11);
  const p0 = rng.uniformArray(7, -1, 1);
  const grads = [...Array(5)].map(() => rng.uniformArray(7, -1, 1));
  const p = Parameter.create(p0, [7]);
  const opt = new Adam([p], { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 5e-4 });
  const ref = Float64Array.from(p0);
  const m = new Float64Array(7);
  const v = new Float64Array(7);
  grads.forEach((g, s) => {
    p.grad?.dispose();
    p.grad = Tensor.from(g, [7]).keep();
    opt.step();
    for (let i = 0; i < 7; i++) {
      const gi = g[i] + 5e-4 * ref[i];
      m[i] = 0.9 * m[i] + 0.1 * gi;
      v[i] = 0.999 * v[i] + 0.001 * gi * gi;
      const bc1 = 1 - 0.9 ** (s + 1);
      const bc2 = 1 - 0.999 ** (s + 1);
      ref[i] -= (1e-2 / bc1) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + 1e-8));
    }
  });
  const got = p.toArray();
  for (let i = 0; i < 7; i++) t.true(Math.abs(got[i] - ref[i]) < 1e-6, `param ${i}: ${got[i]} vs ${ref[i]}`);
  p.grad!.dispose();
  p.dispose();
  opt.dispose();
});

test('PyTorch default initialisation bounds and layouts', (t) => {
  const rng = new Rng(5);
  const lin = new Linear(256, 64, rng);
  const conv = new Conv1d(32, 16, 3, rng, { padding: 1 });
  const mha = new MultiheadAttention(64, 8, 0.1, rng);
  const maxAbs = (x: Tensor): number => x.toArray().reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  t.true(maxAbs(lin.weight) <= 1 / 16 && maxAbs(lin.weight) > 0.9 / 16);
  t.true(maxAbs(conv.weight) <= 1 / Math.sqrt(96));
  t.deepEqual([...conv.weight.shape], [16, 32, 3]);
  t.true(maxAbs(mha.in_proj_weight) <= Math.sqrt(6 / 256) && maxAbs(mha.in_proj_weight) > 0.9 * Math.sqrt(6 / 256));
  t.is(maxAbs(mha.in_proj_bias), 0);
  t.is(maxAbs(mha.out_proj.bias!), 0);
  t.deepEqual(mha.namedParameters().map(([n]) => n), ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']);
  for (const m of [lin, conv, mha]) m.dispose();
});

class Block extends Module {
  atten: MultiheadAttention;
  norm1: LayerNorm;
  linear1: Linear;
  linear2: Linear;
  norm2: LayerNorm;
  head: Linear;
  drop: Dropout;
  constructor(D: number, C: number, rng: Rng) {
    super();
    this.atten = new MultiheadAttention(D, 4, 0.1, rng);
    this.norm1 = new LayerNorm(D);
    this.linear1 = new Linear(D, 32, rng);
    this.linear2 = new Linear(32, D, rng);
    this.norm2 = new LayerNorm(D);
    this.head = new Linear(D, C, rng);
    this.drop = new Dropout(0.1, rng);
  }
  forward(x: Tensor): Tensor {
    let h = this.norm1.forward(ops.add(x, this.drop.forward(this.atten.forward(x, x, x))));
    h = this.norm2.forward(ops.add(h, this.linear2.forward(this.drop.forward(ops.gelu(this.linear1.forward(h))))));
    return this.head.forward(h);
  }
}

test('an attention block learns a toy task (each token: is its value above the sequence mean?)', (t) => {
  const rng = new Rng(7);
  const D = 16;
  const model = new Block(D, 2, rng);
  const opt = new Adam(model.parameters(), { lr: 3e-3 });
  const makeSeq = (L: number): { x: Float32Array; y: Float32Array } => {
    const v = [...Array(L)].map(() => rng.normal());
    const m = v.reduce((a, b) => a + b, 0) / L;
    const x = new Float32Array(L * D);
    const y = new Float32Array(L * 2);
    v.forEach((vi, i) => {
      x[i * D] = vi;
      for (let d = 1; d < D; d++) x[i * D + d] = 0.1 * rng.normal();
      y[i * 2 + (vi > m ? 1 : 0)] = 1;
    });
    return { x, y };
  };
  const accuracy = (): number =>
    noGrad(() =>
      tidy(() => {
        model.eval();
        let right = 0;
        let total = 0;
        for (let s = 0; s < 20; s++) {
          const { x, y } = makeSeq(12);
          const p = model.forward(Tensor.from(x, [12, D])).toArray();
          for (let i = 0; i < 12; i++) {
            right += (p[i * 2 + 1] > p[i * 2]) === (y[i * 2 + 1] === 1) ? 1 : 0;
            total++;
          }
        }
        model.train();
        return right / total;
      }),
    );
  const before = accuracy();
  for (let step = 0; step < 300; step++)
    tidy(() => {
      opt.zeroGrad();
      const { x, y } = makeSeq(12);
      const logits = model.forward(Tensor.from(x, [12, D]));
      // cross-entropy = -mean over tokens of sum(y * log_softmax) = -2 * mean over all entries
      const loss = ops.mulScalar(ops.meanAll(ops.mul(ops.logSoftmax(logits), Tensor.from(y, [12, 2]))), -2);
      backward(loss);
      opt.step();
    });
  const after = accuracy();
  t.true(after > 0.9, `accuracy ${before.toFixed(2)} -> ${after.toFixed(2)}`);
  model.dispose();
  opt.dispose();
});

test('an MLP learns XOR-like data', (t) => {
  const rng = new Rng(9);
  const l1 = new Linear(2, 16, rng);
  const l2 = new Linear(16, 1, rng);
  const opt = new Adam([...l1.parameters(), ...l2.parameters()], { lr: 0.03 });
  const xs = new Float32Array(64 * 2);
  const ys = new Float32Array(64);
  for (let i = 0; i < 64; i++) {
    xs[2 * i] = rng.range(-1, 1);
    xs[2 * i + 1] = rng.range(-1, 1);
    ys[i] = xs[2 * i] * xs[2 * i + 1] > 0 ? 1 : 0;
  }
  let loss = 0;
  for (let s = 0; s < 400; s++)
    loss = tidy(() => {
      opt.zeroGrad();
      const p = ops.sigmoid(l2.forward(ops.relu(l1.forward(Tensor.from(xs, [64, 2])))));
      const l = ops.bce(p.reshape([64]), Tensor.from(ys, [64]));
      backward(l);
      opt.step();
      return l.item();
    });
  t.true(loss < 0.2, `final BCE ${loss}`);
  for (const m of [l1, l2]) m.dispose();
  opt.dispose();
});

test('checkpoints: safetensors round trip by PyTorch names, mismatch listing, atomic writes', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-ckpt-'));
  const rng = new Rng(1);
  const a = new Block(8, 3, rng);
  const b = new Block(8, 3, new Rng(2));
  const file = path.join(dir, 'model.safetensors');
  saveSafetensors(file, a.stateDict(), { iteration: '12' });
  const loaded = loadSafetensors(file);
  t.is(loaded.metadata.iteration, '12');
  t.true(loaded.tensors.has('atten.in_proj_weight') && loaded.tensors.has('linear1.bias'));
  b.loadStateDict(loaded.tensors);
  t.deepEqual(Array.from(b.head.weight.toArray()), Array.from(a.head.weight.toArray()));
  // mismatch: a renamed and a resized entry, both listed
  const bad = new Map(loaded.tensors);
  bad.set('head.weight', { shape: [2, 8], data: new Float32Array(16) });
  bad.set('extra.weight', { shape: [1], data: new Float32Array(1) });
  bad.delete('norm1.bias');
  const err = t.throws(() => b.loadStateDict(bad))!;
  t.regex(err.message, /missing from the checkpoint: norm1.bias/);
  t.regex(err.message, /not in the model: extra.weight/);
  t.regex(err.message, /head.weight: checkpoint \[2, 8\] vs model \[3, 8\]/);
  // truncated file: an error naming the file
  fs.writeFileSync(path.join(dir, 'bad.safetensors'), fs.readFileSync(file).subarray(0, 100));
  t.throws(() => loadSafetensors(path.join(dir, 'bad.safetensors')), { message: /bad.safetensors: not a valid safetensors file/ });
  // no temporary files left behind
  t.deepEqual(fs.readdirSync(dir).sort(), ['bad.safetensors', 'model.safetensors']);
  a.dispose();
  b.dispose();
  fs.rmSync(dir, { recursive: true });
});

test('dropout: seeded, unbiased, and its backward uses the same mask', (t) => {
  tidy(() => {
    const x = Tensor.full([20000], 1);
    x.requiresGrad = true;
    const y = ops.dropout(x, 0.3, true, 42);
    const v = y.toArray();
    const zeros = v.filter((e) => e === 0).length / v.length;
    t.true(Math.abs(zeros - 0.3) < 0.02, `drop rate ${zeros}`);
    t.true(v.every((e) => e === 0 || Math.abs(e - 1 / 0.7) < 1e-6));
    t.deepEqual(ops.dropout(x, 0.3, true, 42).toArray(), v, 'same seed, same mask');
    backward(ops.sumAll(y));
    t.deepEqual(Array.from(x.grad!.toArray()), Array.from(v), 'gradient mask equals forward mask');
    x.grad!.dispose();
  });
});

test('conv1d and matmul compute only the gradients their inputs need (the features need none)', (t) => {
  const rng = new Rng(3);
  const data = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());
  const x = Tensor.from(data(5 * 4), [5, 4]); // features: no gradient wanted
  const w = Tensor.from(data(3 * 4 * 3), [3, 4, 3]);
  w.requiresGrad = true;
  const y = ops.conv1d(x, w, null, 1);
  const [dx, dw] = y.node!.backward(Tensor.full(y.shape, 1));
  t.is(dx, null);
  t.deepEqual((dw as Tensor).shape, [3, 4, 3]);
  const m = ops.matmul(x, Tensor.from(data(4 * 2), [4, 2]));
  t.is(m.node, null, 'no input needs a gradient: no node');
  const p = Tensor.from(data(2 * 4), [2, 4]);
  p.requiresGrad = true;
  const m2 = ops.matmul(x, p, { transB: true });
  const [da, db] = m2.node!.backward(Tensor.full(m2.shape, 1));
  t.is(da, null);
  t.deepEqual((db as Tensor).shape, [2, 4]);
});

// A slice's gradient is a BlockGrad (added where the slice was, never a zero-filled tensor of the
// input's size): into a leaf that several slices and a whole use reach, accumulated over two
// passes; through a non-leaf (made whole there); with integers, so every sum is exact.
test('slice gradients (BlockGrad): a leaf reached by two slices and a whole use, two passes, and a non-leaf', (t) => {
  tidy(() => {
    const int = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => ((i * k) % 7) - 3);
    const W = Tensor.from(int(24, 1), [6, 4]);
    W.requiresGrad = true;
    const A = Tensor.from(int(8, 2), [2, 4]), Bm = Tensor.from(int(8, 3), [2, 4]), C = Tensor.from(int(24, 5), [6, 4]);
    const pass = (): void =>
      backward(ops.add(ops.add(ops.sumAll(ops.mul(ops.slice(W, 0, 0, 2), A)), ops.sumAll(ops.mul(ops.slice(W, 0, 2, 4), Bm))), ops.sumAll(ops.mul(W, C))));
    const [a, b, c] = [A, Bm, C].map((x) => Array.from(x.toArray()));
    const once = c.map((v, i) => v + (i < 8 ? a[i] : i < 16 ? b[i - 8] : 0));
    pass();
    t.deepEqual(Array.from(W.grad!.toArray()), once, 'first pass: [A; B; 0] + C');
    pass();
    t.deepEqual(Array.from(W.grad!.toArray()), once.map((v) => 2 * v), 'second pass accumulates');
    // through a non-leaf, and a slice along the last axis
    const x = Tensor.from(int(12, 4), [3, 4]);
    x.requiresGrad = true;
    backward(ops.sumAll(ops.mul(ops.slice(ops.affine(x, 2, 0), 1, 1, 3), Tensor.from(int(6, 6), [3, 2]))));
    const r = Array.from(int(6, 6));
    t.deepEqual(Array.from(x.grad!.toArray()), Array.from({ length: 12 }, (_, i) => (i % 4 >= 1 && i % 4 < 3 ? 2 * r[Math.floor(i / 4) * 2 + (i % 4) - 1] : 0)));
  });
});
