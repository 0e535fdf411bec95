/**
 * The CUDA backend against the CPU backend, op by op: the same inputs on both devices, outputs and
 * every gradient (through lib/ops and the autograd tape) compared; exact ops (max and its argmax,
 * dropout masks, copies) compared exactly; the backend under worker threads (two threads at once
 * get one thread's bits; the TF32 flag and the cache's streams are per thread); then a few
 * training steps of stage 1, stage 2 and TSPNet on each device, and createDetector on 'cuda'.
 * Runs only where device 'cuda' is usable (cudaAvailable()); elsewhere it registers one skipped
 * test saying why. Two checks run everywhere: the error for a missing CUDA addon, and that this
 * suite names every op the CPU addon exports (so a new op cannot skip it).
 *
 * Tolerance: norm-relative error ||cuda - cpu|| / ||cpu|| < 1e-4, TF32 off. Both devices compute
 * in float32 and differ only in summation order (GEMM tiling, tree reductions, atomics) and in
 * libm vs CUDA math functions (<= 2 ulp). A sum of n terms in float32 errs by ~sqrt(n) * 6e-8
 * relative on either side: ~3e-6 for n = 2048, ~5e-6 for conv1d's 3 * 2048, ~2e-5 after the two
 * or three chained products of a backward pass. 1e-4 keeps a 5x margin over that; an indexing or
 * race bug errs by O(1). Norm-relative, not per-element, so that a cancelling sum (a value near 0
 * computed from large terms) does not fail on rounding alone.
 */
import test, { ExecutionContext } from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as ops from '../../lib/ops';
import { noGrad, Tensor, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { cpu, NativeAddon, NativeBuffer } from '../../lib/runtime/native';
import { cuda, cudaAvailable, Device, loadCudaAddon, setTf32 } from '../../lib/runtime/backend';
import { Rng } from '../../lib/util/rng';
import { relErr } from '../helpers/gradcheck';
import { dropoutScaleRef, MASK_CROSSING, maxCases, maxRangeRef } from '../helpers/ref';
import { defaultProposalOptions } from '../../lib/postprocess/proposals';

const ROOT = path.resolve(__dirname, '..', '..');

const TOL = 1e-4;

// ---- how each CPU op is covered here (checked against the CPU addon's exports, everywhere) ----

const COVERED: Record<string, string> = {
  matmul_forward: 'ops.matmul: shapes, transposes, batched, shared weight, model shapes',
  gemm_info: 'direct: impl cublas, tf32 off, the CPU keys',
  set_gemm_impl: "direct: 'cublas' accepted, others explained",
  set_gemm_precision: "direct: 'fp32' accepted, 'bf16' explained (CPU only)",
  binary_forward: 'ops.add/sub/mul/div with broadcasting',
  sum_to: 'the backward of broadcasting binary ops',
  unary_forward: 'ops.relu/gelu/sigmoid/exp/log/tanh/neg/sqrt/abs',
  unary_backward: 'the same, backward',
  affine: 'ops.affine, and the loss backward of smoothL1/mse targets',
  axpy: 'direct, and gradient accumulation of an input used twice',
  dropout: 'ops.dropout: identical masks for a seed',
  reduce_forward: 'ops.sum/mean/max over each axis, maxOver, sumAll, meanAll; max with ties and NaN exactly, every kernel path',
  reduce_backward: 'the same, backward',
  topk_mean_forward: 'ops.topkMean',
  topk_mean_backward: 'the same, backward',
  softmax_forward: 'ops.softmax / logSoftmax',
  softmax_backward: 'the same, backward',
  layernorm_forward: 'ops.layerNorm',
  layernorm_backward: 'the same, backward',
  l2norm_forward: 'ops.l2Normalize',
  l2norm_backward: 'the same, backward',
  conv1d_forward: 'ops.conv1d: k = 1, 3, 5, padding, with and without bias, model shape',
  conv1d_backward: 'the same, backward',
  attention_forward: 'ops.scaledDotProductAttention with and without dropout; the inference path, Lq < L, L >= 1024, masks across 2^32',
  attention_backward: 'the same, backward',
  gather_rows_forward: 'ops.gatherRows with repeated indices',
  gather_rows_backward: 'the same, backward (duplicates accumulate)',
  block_copy: 'ops.concat / ops.slice along each axis; roiParts\' gradients accumulated, exactly',
  transpose2d: 'ops.transpose2d',
  loss_forward: 'ops.bce / smoothL1 / mse',
  loss_backward: 'the same, backward',
  roi_align_forward: 'ops.roiAlign1d',
  roi_align_backward: 'the same, backward',
  adam_step: 'direct: several steps, with and without weight decay',
  first_nonfinite: 'direct: NaN, Inf, none, empty',
  copy: 'direct with offsets, and Tensor.detach',
  memory_stats: 'direct: live bytes follow allocation, dispose and reset; the cache per stream across threads',
  release_cached_buffers: 'direct: the cache empties',
  get_num_threads: 'direct',
  set_num_threads: 'direct',
  upsample_linear: 'direct, host arrays as lib/postprocess passes them',
  oic_proposals: 'direct, host arrays as lib/postprocess passes them',
  soft_nms: 'direct: each method, both IoU conventions',
  boundary_adaptation: 'direct',
  linear_forward: 'ops.linear: bias or none, relu, dropout, model shapes',
  linear_backward: 'the same, backward, and accumulating into a .grad',
  dropout_add: 'ops.dropoutAdd: residual + dropout, the same mask as dropout',
  weighted_sum: 'ops.weightedSum: one to four terms',
  weighted_sum_backward: 'the same, backward',
  blend_forward: 'ops.blend',
  blend_backward: 'the same, backward',
  focal_bce_forward: 'ops.focalBce',
  focal_bce_backward: 'the same, backward',
  similarity_mean_forward: 'ops.similarityMean with repeated rows',
  similarity_mean_backward: 'the same, backward',
  contrastive_terms_forward: 'ops.contrastiveTerms over one and three classes',
  contrastive_terms_backward: 'the same, backward',
  adam_step_many: 'direct: against adam_step, several parameters',
  call_counts: 'direct: calls and kernel launches per op',
  reset_call_counts: 'direct: counts cleared',
};
const EXEMPT: Record<string, string> = {
  synth_features: 'CPU-only generation of synthetic data',
  dlopen_global: 'loads cuBLAS before the CUDA addon (lib/runtime/backend.ts); not a tensor op',
};

function opNames(addon: NativeAddon): string[] {
  return Object.keys(addon).filter((k) => k !== 'NativeBuffer' && typeof addon[k] === 'function').sort();
}

test('the CUDA suite covers every op the CPU addon exports', (t) => {
  const names = opNames(cpu());
  const missing = names.filter((n) => !(n in COVERED) && !(n in EXEMPT));
  t.deepEqual(missing, [], `CPU ops with no CUDA parity check: ${missing.join(', ')}`);
  const stale = Object.keys(COVERED).filter((n) => !names.includes(n));
  t.deepEqual(stale, [], `ops listed here that the CPU addon no longer exports: ${stale.join(', ')}`);
});

test('device cuda without its addon fails with the error that says how to build it', (t) => {
  const file = path.join(os.tmpdir(), 'pstal-no-such-dir', 'pstal_cuda.node');
  const e = t.throws(() => loadCudaAddon(file));
  t.regex(e!.message, /device 'cuda' is not available/);
  t.true(e!.message.includes(file), 'names the file it looked for');
  t.regex(e!.message, /npm run build:cuda/);
  // A file that is there but cannot be loaded (here: not a shared library) names the cause.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-bad-addon-'));
  try {
    const bad = path.join(dir, 'pstal_cuda.node');
    fs.writeFileSync(bad, 'not a shared library');
    t.throws(() => loadCudaAddon(bad), { message: new RegExp(`device 'cuda' could not be loaded from .*pstal_cuda\\.node: .+`) });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!cudaAvailable()) {
    // The real path: a tensor on 'cuda' gets the loader's message (not built, or built but unloadable).
    const err = t.throws(() => Tensor.zeros([2], 'cuda'));
    t.regex(err!.message, /device 'cuda' (is not available|could not be loaded)/);
    t.throws(() => setTf32(true), { message: /device 'cuda'/ });
  } else {
    t.is(cuda().backend, 'cuda');
  }
});

// ---- the GPU suite -----------------------------------------------------------------------------

let unavailable = '';
try {
  cuda();
} catch (e) {
  unavailable = (e as Error).message;
}

if (unavailable) {
  test.skip(`CUDA parity suite (skipped: ${unavailable})`, () => {});
} else {
  registerGpuSuite();
}

function registerGpuSuite(): void {
  const C = cuda();
  const P = cpu();

  test.before(() => {
    setTf32(false); // PSTAL_TF32=1 in the environment would otherwise loosen every GEMM
  });

  function compare(t: ExecutionContext, what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = TOL): void {
    t.is(got.length, want.length, `${what}: length`);
    // A reference that is exactly zero (a gradient that vanishes identically, e.g. of the queries
    // when a softmax has one key: P = 1, dP - sum(dP * P) = 0) has no norm to be relative to: the
    // other side's rounding (~1e-10 at these O(1) values) is checked against an absolute bound.
    if (Array.prototype.every.call(want, (x: number) => x === 0)) {
      const largest = Array.prototype.reduce.call(got, (m: number, x: number) => Math.max(m, Math.abs(x)), 0) as number;
      t.true(largest < 1e-6, `${what}: the reference is exactly 0, the largest magnitude here is ${largest}`);
      return;
    }
    const e = relErr(got, want);
    let worst = 0;
    let at = -1;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(got[i] - want[i]);
      if (!(d <= worst)) {
        worst = d;
        at = i;
      }
    }
    t.true(e < tol, `${what}: relative error ${e.toExponential(2)} (largest difference ${worst} at ${at}: cuda ${got[at]}, cpu ${want[at]})`);
  }

  interface Case {
    name: string;
    shapes: number[][];
    f: (xs: Tensor[]) => Tensor;
    /** inputs to take gradients of (default: all; [] for none) */
    grad?: number[];
    draw?: (i: number, rng: Rng, n: number) => Float32Array;
    tol?: number;
  }

  const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);

  /** Runs a case on one device: the output and the gradient of sum(out * R) for each input. */
  function runOn(device: Device, c: Case, data: Float32Array[], seed: number): { y: Float32Array; gs: Float32Array[] } {
    const grads = c.grad ?? c.shapes.map((_, i) => i);
    return tidy(() => {
      const ins = data.map((d, i) => {
        const x = Tensor.from(d, c.shapes[i], device);
        x.requiresGrad = grads.includes(i);
        return x;
      });
      const out = c.f(ins);
      const y = out.toArray();
      const gs: Float32Array[] = [];
      if (grads.length) {
        const R = Tensor.from(new Rng(seed + 7919).uniformArray(out.size, -1, 1), out.shape, device);
        backward(ops.sumAll(ops.mul(out, R)));
        for (const i of grads) gs.push(ins[i].grad?.toArray() ?? new Float32Array(data[i].length));
        for (const x of ins) {
          x.grad?.dispose();
          x.grad = null;
        }
      }
      return { y, gs };
    });
  }

  function parity(t: ExecutionContext, c: Case, seed = 1): void {
    const rng = new Rng(seed);
    const data = c.shapes.map((s, i) => (c.draw ? c.draw(i, rng, size(s)) : rng.uniformArray(size(s), -1, 1)));
    const want = runOn('cpu', c, data, seed);
    const got = runOn('cuda', c, data, seed);
    const tag = `${c.name} ${JSON.stringify(c.shapes)}`;
    compare(t, `${tag} forward`, got.y, want.y, c.tol);
    const grads = c.grad ?? c.shapes.map((_, i) => i);
    grads.forEach((inp, k) => compare(t, `${tag} gradient of input ${inp}`, got.gs[k], want.gs[k], c.tol));
  }

  const uniform = (lo: number, hi: number) => (_: number, rng: Rng, n: number): Float32Array => rng.uniformArray(n, lo, hi);

  // ---- addon surface -------------------------------------------------------------------------

  test('the CUDA addon exports every CPU op under the same name, and its own extras', (t) => {
    t.is(C.backend, 'cuda');
    const missing = opNames(P).filter((n) => !(n in EXEMPT) && typeof C[n] !== 'function');
    t.deepEqual(missing, []);
    for (const extra of ['device_info', 'set_tf32', 'synchronize']) t.is(typeof C[extra], 'function', extra);
    const info = C.device_info();
    t.true(typeof info.name === 'string' && info.name.length > 0);
    t.regex(info.computeCapability, /^\d+\.\d+$/);
    t.true(info.totalBytes > 0 && info.freeBytes > 0 && info.freeBytes <= info.totalBytes);
    t.log(`${info.name}, compute ${info.computeCapability}, ${(info.totalBytes / 2 ** 30).toFixed(1)} GiB`);
  });

  test('gemm_info and set_gemm_impl', (t) => {
    const info = C.gemm_info();
    t.is(info.impl, 'cublas');
    t.is(info.tf32, false);
    for (const k of Object.keys(P.gemm_info())) t.true(k in info, `gemm_info has the CPU key ${k}`);
    t.is(C.set_gemm_impl('cublas'), undefined);
    t.is(C.gemm_info().impl, 'cublas', 'still cuBLAS after selecting it');
    t.throws(() => C.set_gemm_impl('pstal'), { message: /set_gemm_impl: .*cublas/ });
    t.is(C.set_gemm_precision('fp32'), undefined);
    t.throws(() => C.set_gemm_precision('bf16'), { message: /set_gemm_precision: .*'bf16' is the CPU backend's/ });
    // and a product after selecting it is right (2x2 by hand)
    const a = Tensor.from([1, 2, 3, 4], [2, 2], 'cuda');
    t.deepEqual(Array.from(ops.matmul(a, a).toArray()), [7, 10, 15, 22]);
  });

  test('get_num_threads and set_num_threads (host threads, shared code)', (t) => {
    const n = C.get_num_threads();
    t.true(n >= 1);
    C.set_num_threads(n);
    t.is(C.get_num_threads(), n);
  });

  test('NativeBuffer: construct, read, write, fill, dispose', (t) => {
    const data = new Rng(3).uniformArray(1001, -5, 5);
    const b = new C.NativeBuffer(data);
    t.is(b.size, 1001);
    t.deepEqual(b.read(), data);
    t.deepEqual(b.read(10, 5), data.subarray(10, 15));
    b.write(Float32Array.from([1, 2, 3]), 998);
    t.deepEqual(Array.from(b.read(997, 4)), [data[997], 1, 2, 3]);
    b.fill(2.5);
    t.true(b.read().every((v) => v === 2.5));
    b.fill(0);
    t.true(b.read().every((v) => v === 0));
    t.throws(() => b.read(1000, 2), { instanceOf: RangeError });
    b.dispose();
    b.dispose();
    t.true(b.disposed);
    t.throws(() => b.read(), { message: /disposed/ });
    const z = new C.NativeBuffer(7);
    t.deepEqual(Array.from(z.read()), [0, 0, 0, 0, 0, 0, 0]);
    z.dispose();
    const e = new C.NativeBuffer(0);
    t.is(e.read().length, 0);
    e.dispose();
  });

  // The buffer counts are the process's, every thread's: the tests that compare them run serially,
  // hence before any test that starts worker threads (ava runs serial tests first, in order), whose
  // buffers a worker's teardown may release at any time.
  test.serial('NativeBuffer: unfilled, and reset after dispose, as on the CPU', (t) => {
    const src = new Rng(8).uniformArray(1000, -1, 1);
    for (const B of [C, P]) {
      const what = B.backend;
      const before = B.memory_stats();
      // unfilled: readable whatever it holds; written or overwritten whole by an op
      const u = new B.NativeBuffer(1000, false);
      t.is(u.size, 1000);
      t.false(u.disposed);
      t.is(u.read().length, 1000);
      u.write(src);
      t.deepEqual(u.read(), src, `${what}: written`);
      const s = new B.NativeBuffer(src);
      const o = new B.NativeBuffer(1000, false);
      B.copy(s, 0, o, 0, 1000);
      t.deepEqual(o.read(), src, `${what}: an op's output, unfilled`);
      // reset: only a disposed buffer; a size is zero-filled (here most likely the cached block that
      // held 7s), (size, false) unfilled, a Float32Array copied; the wrapper is the same
      t.throws(() => u.reset(10), { message: /only a disposed buffer can be reset/ });
      u.fill(7);
      u.dispose();
      u.reset(1000);
      t.false(u.disposed);
      t.is(u.size, 1000);
      t.true(u.read().every((x) => x === 0), `${what}: reset(size) is zero-filled`);
      u.dispose();
      u.reset(src.subarray(0, 37));
      t.deepEqual(u.read(), src.subarray(0, 37), `${what}: reset(Float32Array)`);
      u.dispose();
      u.reset(64, false);
      t.is(u.size, 64);
      u.write(src.subarray(0, 64));
      t.deepEqual(u.read(), src.subarray(0, 64), `${what}: reset(size, false), then written`);
      u.dispose();
      u.reset(0);
      t.is(u.read().length, 0);
      u.dispose();
      t.throws(() => u.reset('x' as unknown as number), { message: /expected a size or a Float32Array/ });
      t.true(u.disposed, 'a refused reset leaves the buffer disposed');
      for (const b of [s, o]) b.dispose();
      const after = B.memory_stats();
      t.is(after.liveBytes, before.liveBytes, `${what}: every byte given back`);
      t.is(after.liveBuffers, before.liveBuffers);
      t.is(after.createdBuffers - before.createdBuffers, 3, `${what}: reset makes no wrapper`);
    }
  });

  test.serial('memory_stats and release_cached_buffers', (t) => {
    const before = C.memory_stats();
    for (const k of Object.keys(P.memory_stats())) t.true(k in before, `memory_stats has the CPU key ${k}`);
    const b = new C.NativeBuffer(1 << 20);
    const during = C.memory_stats();
    t.is(during.liveBytes - before.liveBytes, 4 << 20);
    t.is(during.liveBuffers - before.liveBuffers, 1);
    b.dispose();
    const after = C.memory_stats();
    t.is(after.liveBytes, before.liveBytes);
    t.true(after.cachedBytes >= 4 << 20, 'the freed block is cached');
    C.release_cached_buffers();
    t.is(C.memory_stats().cachedBytes, 0);
  });

  test('Tensor.to moves values between devices; ops refuse mixed devices', (t) => {
    tidy(() => {
      const data = new Rng(4).uniformArray(35, -1, 1);
      const x = Tensor.from(data, [5, 7]);
      const g = x.to('cuda');
      t.is(g.device, 'cuda');
      t.deepEqual(g.toArray(), data);
      t.deepEqual(g.to('cpu').toArray(), data);
      t.deepEqual(g.detach().toArray(), data);
      t.throws(() => ops.add(x, g), { message: /different devices/ });
    });
  });

  test('first_nonfinite', (t) => {
    const cases: [number, [number, number][]][] = [
      [1000, [[777, NaN], [900, Infinity]]],
      [1000, []],
      [1, [[0, -Infinity]]],
      [8_000_000, [[7_999_999, NaN], [5_000_001, NaN]]],
    ];
    for (const [n, bad] of cases) {
      const d = new Float32Array(n).fill(1);
      for (const [i, v] of bad) d[i] = v;
      const b = new C.NativeBuffer(d);
      const p = new P.NativeBuffer(d);
      t.is(C.first_nonfinite(b), P.first_nonfinite(p), `n = ${n}`);
      b.dispose();
      p.dispose();
    }
    const e = new C.NativeBuffer(0);
    t.is(C.first_nonfinite(e), -1);
    e.dispose();
  });

  test('copy with offsets', (t) => {
    const src = new Rng(5).uniformArray(100, -1, 1);
    const s = new C.NativeBuffer(src);
    const d = new C.NativeBuffer(50);
    C.copy(s, 13, d, 7, 30);
    const got = d.read();
    for (let i = 0; i < 50; i++) t.is(got[i], i >= 7 && i < 37 ? src[13 + i - 7] : 0);
    t.throws(() => C.copy(s, 90, d, 0, 20), { message: /copy: .*src/ });
    s.dispose();
    d.dispose();
  });

  test('axpy', (t) => {
    const rng = new Rng(6);
    for (const n of [1, 1001, 1 << 20]) {
      const y = rng.uniformArray(n, -1, 1);
      const x = rng.uniformArray(n, -1, 1);
      const [yc, xc, yp, xp] = [new C.NativeBuffer(y), new C.NativeBuffer(x), new P.NativeBuffer(y), new P.NativeBuffer(x)];
      C.axpy(yc, xc, n, -0.75);
      P.axpy(yp, xp, n, -0.75);
      compare(t, `axpy n=${n}`, yc.read(), yp.read());
      for (const b of [yc, xc, yp, xp]) b.dispose();
    }
  });

  test('adam_step', (t) => {
    const rng = new Rng(7);
    for (const [n, wd] of [[1, 0], [1001, 0.01], [2048 * 2048, 0]] as [number, number][]) {
      const init = [rng.uniformArray(n, -1, 1), rng.uniformArray(n, -0.1, 0.1), rng.uniformArray(n, 0, 1e-3)];
      const bc = [new C.NativeBuffer(init[0]), new C.NativeBuffer(n), new C.NativeBuffer(init[1]), new C.NativeBuffer(init[2])];
      const bp = [new P.NativeBuffer(init[0]), new P.NativeBuffer(n), new P.NativeBuffer(init[1]), new P.NativeBuffer(init[2])];
      for (let step = 1; step <= 3; step++) {
        const g = rng.uniformArray(n, -1, 1);
        bc[1].write(g);
        bp[1].write(g);
        C.adam_step(bc[0], bc[1], bc[2], bc[3], n, 1e-3, 0.9, 0.999, 1e-8, wd, step);
        P.adam_step(bp[0], bp[1], bp[2], bp[3], n, 1e-3, 0.9, 0.999, 1e-8, wd, step);
      }
      ['param', 'grad', 'm', 'v'].forEach((name, i) => compare(t, `adam n=${n} wd=${wd} ${name}`, bc[i].read(), bp[i].read()));
      for (const b of [...bc, ...bp]) b.dispose();
    }
  });

  // ---- GEMM ----------------------------------------------------------------------------------

  for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [17, 33, 9], [1, 2048, 2048], [340, 128, 2048]])
    for (const ta of [false, true])
      for (const tb of [false, true])
        test(`matmul ${M}x${K}x${N} ta=${ta} tb=${tb}`, (t) =>
          parity(t, { name: 'matmul', shapes: [ta ? [K, M] : [M, K], tb ? [N, K] : [K, N]], f: ([a, b]) => ops.matmul(a, b, { transA: ta, transB: tb }) }));

  test('matmul at the model shapes: linear [340x2048] x [2048x2048]^T and FFN [360x2048] x [128x2048]^T', (t) => {
    parity(t, { name: 'linear', shapes: [[340, 2048], [2048, 2048]], f: ([x, w]) => ops.matmul(x, w, { transB: true }) });
    parity(t, { name: 'ffn', shapes: [[360, 2048], [128, 2048]], f: ([x, w]) => ops.matmul(x, w, { transB: true }) });
  });

  test('matmul batched, transposed batched, and shared weight over leading dims', (t) => {
    parity(t, { name: 'bmm', shapes: [[3, 5, 6], [3, 6, 4]], f: ([a, b]) => ops.matmul(a, b) });
    parity(t, { name: 'bmm^T', shapes: [[3, 6, 5], [3, 4, 6]], f: ([a, b]) => ops.matmul(a, b, { transA: true, transB: true }) });
    parity(t, { name: 'heads', shapes: [[8, 360, 256], [8, 360, 256]], f: ([a, b]) => ops.matmul(a, b, { transB: true }) });
    parity(t, { name: 'shared', shapes: [[2, 4, 3, 5], [5, 7]], f: ([a, b]) => ops.matmul(a, b) });
    parity(t, { name: 'shared^T', shapes: [[2, 4, 3, 5], [7, 5]], f: ([a, b]) => ops.matmul(a, b, { transB: true }) });
  });

  // ---- elementwise -----------------------------------------------------------------------------

  const BIN: [string, (a: Tensor, b: Tensor) => Tensor][] = [['add', ops.add], ['sub', ops.sub], ['mul', ops.mul], ['div', ops.div]];
  for (const [name, f] of BIN)
    test(`${name} with broadcasting`, (t) => {
      for (const [sa, sb] of [[[1], [1]], [[4, 5], [4, 5]], [[4, 5], [5]], [[3, 1, 5], [4, 1]], [[1], [2, 3]], [[1, 7], [1, 7]], [[340, 2048], [2048]], [[33, 1], [1, 65]]])
        parity(t, { name, shapes: [sa, sb], f: ([a, b]) => f(a, b), draw: name === 'div' ? (i, rng, n) => rng.uniformArray(n, i === 1 ? 0.5 : -1, i === 1 ? 2 : 1) : undefined });
    });

  const UN: [string, (x: Tensor) => Tensor, ((i: number, rng: Rng, n: number) => Float32Array)?][] = [
    ['relu', ops.relu], ['gelu', ops.gelu], ['sigmoid', ops.sigmoid], ['exp', ops.exp], ['log', ops.log, uniform(0.2, 2)],
    ['tanh', ops.tanh], ['neg', ops.neg], ['sqrt', ops.sqrt, uniform(0.2, 2)], ['abs', ops.abs],
  ];
  for (const [name, f, draw] of UN)
    test(`${name}`, (t) => {
      for (const shape of [[1], [7, 13], [361, 129]]) parity(t, { name, shapes: [shape], f: ([x]) => f(x), draw: draw ?? uniform(-3, 3) });
    });

  // ---- fused ops (one native call for several ops) ------------------------------------------------

  test('linear: bias or none, relu, dropout, and the model shapes', (t) => {
    for (const [M, K, N] of [[5, 7, 3], [340, 256, 128]])
      for (const relu of [false, true])
        for (const p of [0, 0.3]) {
          const dropout = p ? { p, seed: 11 } : null;
          parity(t, { name: `linear relu=${relu} p=${p}`, shapes: [[M, K], [N, K], [N]], f: ([x, w, b]) => ops.linear(x, w, b, { relu, dropout }) });
          parity(t, { name: `linear no bias relu=${relu} p=${p}`, shapes: [[M, K], [N, K]], f: ([x, w]) => ops.linear(x, w, null, { relu, dropout }) });
        }
  });

  test('linear accumulating into a .grad (a leaf used once, two passes)', (t) => {
    const run = (device: Device): Float32Array =>
      tidy(() => {
        const rng = new Rng(3);
        const x = Tensor.from(rng.uniformArray(6 * 4, -1, 1), [6, 4], device);
        const w = Tensor.from(rng.uniformArray(3 * 4, -1, 1), [3, 4], device);
        w.requiresGrad = true;
        for (let i = 0; i < 2; i++) backward(ops.sumAll(ops.linear(x, w, null, { relu: true })));
        const g = w.grad!.toArray();
        w.grad!.dispose();
        return g;
      });
    compare(t, 'accumulated dw', run('cuda'), run('cpu'), TOL);
  });

  test('dropoutAdd, weightedSum, blend, focalBce', (t) => {
    parity(t, { name: 'dropoutAdd', shapes: [[33, 65], [33, 65]], f: ([x, r]) => ops.dropoutAdd(x, r, 0.3, true, 5) });
    for (const k of [1, 2, 4])
      parity(t, { name: `weightedSum ${k}`, shapes: Array.from({ length: k }, () => [7, 3]), f: (xs) => ops.weightedSum(xs, [0.5, 1, -2, 0.25].slice(0, k)) });
    const y = Tensor.from(Float32Array.from({ length: 20 }, (_, i) => i % 3 === 0 ? 1 : 0), [20], 'cpu');
    parity(t, { name: 'blend', shapes: [[20], [20]], f: ([a, b]) => ops.blend(a, b, y.to(a.device)) });
    const target = Float32Array.from({ length: 9 * 21 }, (_, i) => (i % 7 === 0 ? 1 : 0));
    parity(t, { name: 'focalBce', shapes: [[9, 21]], draw: uniform(0.05, 0.95), f: ([p]) => ops.focalBce(p, target, 1 / 9) });
  });

  test('similarityMean and contrastiveTerms', (t) => {
    const P = (device: Device): Tensor => ops.l2Normalize(Tensor.from(new Rng(9).uniformArray(5 * 16, -1, 1), [5, 16], device));
    parity(t, { name: 'similarityMean', shapes: [[12, 16]], f: ([E]) => ops.similarityMean(E, [0, 3, 3, 11], P(E.device), 10) });
    for (const classes of [[2], [0, 2, 4]])
      parity(t, {
        name: `contrastiveTerms ${classes}`, shapes: [...classes.map(() => [5]), [5]], draw: uniform(0.5, 3),
        f: (xs) => ops.contrastiveTerms(xs.slice(0, -1), xs[xs.length - 1], classes, 1 / 3),
      });
  });

  test('adam_step_many matches adam_step, and the launch counter counts CUDA launches', (t) => {
    const rng = new Rng(4);
    const sizes = [5, 300];
    const mk = (B: NativeAddon) => sizes.map((n) => [0, 1, 2, 3].map(() => new B.NativeBuffer(rng.uniformArray(n, 0, 1))));
    const one = mk(C);
    const many = one.map((bs) => bs.map((b) => new C.NativeBuffer(b.read())));
    one.forEach((b, i) => C.adam_step(b[0], b[1], b[2], b[3], sizes[i], 1e-3, 0.9, 0.999, 1e-8, 0.01, 2));
    C.adam_step_many(sizes, 1e-3, 0.9, 0.999, 1e-8, 0.01, 2, ...many.flat());
    one.forEach((b, i) => t.deepEqual(many[i][0].read(), b[0].read()));
    C.reset_call_counts();
    tidy(() => ops.relu(Tensor.from([1, -1], [2], 'cuda')));
    const counts = C.call_counts();
    t.is(counts.calls.unary_forward, 1);
    t.is(counts.launches.unary_forward, 1);
  });

  test('affine', (t) => {
    for (const shape of [[1], [1001], [340, 2048]]) parity(t, { name: 'affine', shapes: [shape], f: ([x]) => ops.affine(x, 1.7, -0.3) });
  });

  test('dropout: the same mask for the same seed', (t) => {
    for (const shape of [[1], [1001], [340, 2048]])
      for (const [p, seed] of [[0.1, 3], [0.5, 12345], [0.7, 2 ** 31 + 5]])
        parity(t, { name: `dropout p=${p} seed=${seed}`, shapes: [shape], f: ([x]) => ops.dropout(x, p, true, seed) }, 2);
  });

  test('gradient accumulation of an input used twice (axpy on the tape)', (t) => {
    parity(t, { name: 'x*x+x', shapes: [[17, 9]], f: ([x]) => ops.add(ops.mul(x, x), x) });
  });

  // ---- reductions, normalisation ---------------------------------------------------------------

  test('sum / mean / max over each axis, sumAll, meanAll', (t) => {
    for (const shape of [[1, 5], [7, 13], [340, 21], [3, 4, 5], [2048], [360, 2048]])
      for (let axis = 0; axis < shape.length; axis++)
        for (const [name, f] of [['sum', ops.sum], ['mean', ops.mean], ['max', ops.max]] as const)
          parity(t, { name: `${name} axis ${axis}`, shapes: [shape], f: ([x]) => f(x, axis, axis === 0) });
    // a range of the axis read in place (RoI parts: [M, 12 bins, D], bins [2, 10)), and a long one
    parity(t, { name: 'maxOver bins', shapes: [[1000, 12, 256]], f: ([x]) => ops.maxOver(x, 1, 2, 10) });
    parity(t, { name: 'maxOver long', shapes: [[3, 5000, 40]], f: ([x]) => ops.maxOver(x, 1, 100, 4900) });
    for (const shape of [[1], [1001], [340, 2048]]) {
      parity(t, { name: 'sumAll', shapes: [shape], f: ([x]) => ops.sumAll(x) });
      parity(t, { name: 'meanAll', shapes: [shape], f: ([x]) => ops.meanAll(x) });
    }
  });

  // max is exact on both backends: the same value bits and argmax, and both the rule's
  // (maxRangeRef: the first strict maximum from the range start; NaN never replaces, NaN at the
  // start stays), with ties, +-0, infinities and NaN, on the addon directly (ops.max refuses NaN).
  // Each shape takes one path of native/cuda/reduce.cu reduce_launch, each with a range offset:
  // the serial kernel (len <= 64); the tiled kernel in one chunk (32 columns a block, len <= 256;
  // one column a block, len <= 8192; 1024 output groups or more); and in chunks combined by a second
  // kernel (a long axis over few outputs).
  test('maxOver with ties and NaN (NaN at the range start too): values and argmax exactly, every kernel path', (t) => {
    for (const [outer, axisLen, inner, start, len] of [
      [3, 80, 40, 10, 50], [2, 70, 5, 0, 64],
      [4, 300, 64, 17, 200], [2, 1000, 5, 3, 900], [1100, 100, 1, 5, 90],
      [3, 5000, 40, 100, 4800], [1, 20000, 3, 1, 19998],
    ]) {
      const x = maxCases(outer, axisLen, inner, start, len, outer * 7919 + len);
      const want = maxRangeRef(x, outer, axisLen, inner, start, len);
      const run = (B: NativeAddon): { out: Float32Array; arg: Float32Array } => {
        const [xb, out, arg] = [new B.NativeBuffer(x), new B.NativeBuffer(outer * inner, false), new B.NativeBuffer(outer * inner, false)];
        B.reduce_forward(2, out, arg, xb, outer, len, inner, axisLen, start);
        const r = { out: out.read(), arg: arg.read() };
        for (const b of [xb, out, arg]) b.dispose();
        return r;
      };
      const what = `[${outer}, ${axisLen}, ${inner}] positions [${start}, ${start + len})`;
      const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
      for (const [name, got] of [['cuda', run(C)], ['cpu', run(P)]] as const) {
        t.deepEqual(bits(got.out), bits(want.out), `${name} values (bits), ${what}`);
        t.deepEqual(got.arg, want.arg, `${name} argmax, ${what}`);
      }
    }
  });

  test('topkMean', (t) => {
    for (const [T, Cc, k] of [[1, 3, 1], [17, 5, 3], [340, 21, 42], [341, 20, 1], [64, 7, 64]])
      parity(t, { name: `topkMean k=${k}`, shapes: [[T, Cc]], f: ([x]) => ops.topkMean(x, k) });
  });

  test('softmax and logSoftmax', (t) => {
    for (const shape of [[1, 1], [7, 13], [8 * 360, 360], [3, 2049]]) {
      parity(t, { name: 'softmax', shapes: [shape], f: ([x]) => ops.softmax(x), draw: uniform(-4, 4) });
      parity(t, { name: 'logSoftmax', shapes: [shape], f: ([x]) => ops.logSoftmax(x), draw: uniform(-4, 4) });
    }
  });

  test('layerNorm', (t) => {
    for (const [rows, cols] of [[1, 1], [1, 2048], [5, 7], [360, 2048], [3, 4097]])
      parity(t, {
        name: 'layerNorm', shapes: [[rows, cols], [cols], [cols]], f: ([x, w, b]) => ops.layerNorm(x, w, b),
        draw: (i, rng, n) => (i === 0 ? rng.uniformArray(n, -2, 3) : rng.uniformArray(n, 0.5, 1.5)),
      });
  });

  test('l2Normalize', (t) => {
    for (const shape of [[1, 1], [9, 31], [340, 2048]]) parity(t, { name: 'l2Normalize', shapes: [shape], f: ([x]) => ops.l2Normalize(x) });
  });

  // ---- conv1d, attention -----------------------------------------------------------------------

  test('conv1d', (t) => {
    for (const [T, Cin, Cout, k, pad, bias] of [
      [1, 3, 5, 1, 0, true], [1, 4, 6, 3, 1, true], [17, 9, 11, 3, 1, false], [33, 7, 8, 5, 2, true], [20, 6, 4, 3, 0, true],
      [340, 2048, 2048, 3, 1, true], [340, 2048, 21, 1, 0, false],
    ] as [number, number, number, number, number, boolean][])
      parity(t, {
        name: `conv1d k=${k} pad=${pad} bias=${bias}`,
        shapes: bias ? [[T, Cin], [Cout, Cin, k], [Cout]] : [[T, Cin], [Cout, Cin, k]],
        f: ([x, w, b]) => ops.conv1d(x, w, b ?? null, pad),
      });
  });

  test('attention', (t) => {
    for (const [L, D, heads, p] of [[1, 8, 2, 0], [1, 8, 1, 0.1], [7, 12, 3, 0], [7, 12, 3, 0.1], [33, 64, 8, 0.3], [360, 2048, 8, 0.1]])
      parity(t, {
        name: `attention L=${L} D=${D} heads=${heads} p=${p}`, shapes: [[L, D], [L, D], [L, D]],
        f: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, heads, p, 77),
      });
    // fewer queries than keys (the last RAB's snippet rows): the same dropout mask numbering
    for (const [Lq, L, D, heads, p] of [[1, 7, 12, 3, 0.1], [5, 7, 12, 3, 0.1], [340, 360, 2048, 8, 0.1]])
      parity(t, {
        name: `attention Lq=${Lq} L=${L} D=${D} heads=${heads} p=${p}`, shapes: [[Lq, D], [L, D], [L, D]],
        f: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, heads, p, 77),
      });
  });

  /** Attention's output on one device from its inference path (no saved weights) and its training path. */
  function attentionPaths(device: Device, data: Float32Array[], Lq: number, L: number, D: number, H: number, p: number, seed: number): { inference: Float32Array; training: Float32Array } {
    return tidy(() => {
      const [q, k, v] = data.map((d, i) => Tensor.from(d, [i ? L : Lq, D], device));
      const inference = noGrad(() => ops.scaledDotProductAttention(q, k, v, H, p, seed)).toArray();
      q.requiresGrad = true;
      const training = ops.scaledDotProductAttention(q, k, v, H, p, seed).toArray();
      return { inference, training };
    });
  }

  // The inference path (no [H, Lq, L] weights saved: scores in scratch) with fewer queries than keys,
  // at p = 0.1 (the same dropout mask: element (h, i, j) is number (h L + i) L + j on both backends,
  // common/rng.h) and p = 0; and training with Lq < L at p = 0. On each device the inference output is
  // its training output bit for bit.
  test('attention: the inference path with Lq < L (p = 0.1 and 0), and training with Lq < L at p = 0', (t) => {
    for (const [Lq, L, D, heads] of [[1, 7, 12, 3], [5, 7, 12, 3], [340, 360, 256, 8]]) {
      const shapes = [[Lq, D], [L, D], [L, D]];
      parity(t, { name: `attention training Lq=${Lq} L=${L} p=0`, shapes, f: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, heads, 0, 77) });
      for (const p of [0.1, 0]) {
        parity(t, { name: `attention inference Lq=${Lq} L=${L} p=${p}`, shapes, grad: [], f: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, heads, p, 77) });
        const rng = new Rng(Lq + L);
        const data = shapes.map((sh) => rng.uniformArray(sh[0] * sh[1], -1, 1));
        for (const device of ['cuda', 'cpu'] as const) {
          const r = attentionPaths(device, data, Lq, L, D, heads, p, 77);
          t.deepEqual(r.inference, r.training, `${device}: Lq=${Lq} L=${L} p=${p}, inference and training outputs`);
        }
      }
    }
  });

  // L >= 1024: the CPU splits the query rows into blocks (native/cpu/attention.cc query_block: 960
  // rows at L = 1024 and 1000, 768 at L = 1100, 384 at L = 2048, with the default budget and GEMM
  // depth block), with its dropout mask and dK, dV sums carried across blocks; CUDA does the rows at
  // once. Training and inference, Lq = L and Lq < L.
  test('attention at L >= 1024, where the CPU works in blocks of query rows', (t) => {
    for (const [Lq, L, D, heads, p] of [[1024, 1024, 64, 4, 0.1], [1000, 1024, 64, 4, 0.1], [1100, 1100, 32, 2, 0], [700, 2048, 32, 2, 0.1]]) {
      const shapes = [[Lq, D], [L, D], [L, D]];
      parity(t, { name: `attention Lq=${Lq} L=${L} p=${p}`, shapes, f: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, heads, p, 78) });
      parity(t, { name: `attention inference Lq=${Lq} L=${L} p=${p}`, shapes, grad: [], f: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, heads, p, 78) });
    }
  });

  // A query row whose mask numbers pass 2^32 (where rng.h changes key; MASK_CROSSING: small shapes,
  // Lq < L). The upstream gradient is zero but for that row, so dV of head h is that row's weights
  // times its mask times g: zero exactly where the mask drops. Both backends' masks (the forward's,
  // and the backward's, which CUDA regenerates) are compared with rng.h's, element by element, for
  // the heads below, across and above 2^32; the outputs and gradients by tolerance, and each
  // device's inference output with its training output exactly.
  test('attention dropout masks across element 2^32: the same mask on both backends, rng.h\'s', (t) => {
    const p = 0.5, seed = 31;
    for (const { Lq, L, H, dh, row } of MASK_CROSSING) {
      const D = H * dh;
      const rng = new Rng(L);
      const data = [Lq, L, L].map((rows) => rng.uniformArray(rows * D, -1, 1));
      const g = new Float32Array(Lq * D);
      g.set(rng.uniformArray(D, 0.5, 1.5), row * D);
      const run = (device: Device): { out: Float32Array; grads: Float32Array[] } =>
        tidy(() => {
          const xs = data.map((d, i) => Tensor.from(d, [i ? L : Lq, D], device));
          for (const x of xs) x.requiresGrad = true;
          const out = ops.scaledDotProductAttention(xs[0], xs[1], xs[2], H, p, seed);
          backward(out, Tensor.from(g, [Lq, D], device));
          const grads = xs.map((x) => x.grad!.toArray());
          for (const x of xs) x.grad!.dispose();
          return { out: out.toArray(), grads };
        });
      const got = run('cuda');
      const want = run('cpu');
      compare(t, `L=${L} output`, got.out, want.out);
      ['dq', 'dk', 'dv'].forEach((name, i) => compare(t, `L=${L} ${name}`, got.grads[i], want.grads[i]));
      for (const [device, r] of [['cuda', got], ['cpu', want]] as const) {
        const dv = r.grads[2];
        for (let h = 0; h < H; h++) {
          let bad = 0;
          for (let j = 0; j < L; j++) {
            const drop = dropoutScaleRef(seed, (h * L + row) * L + j, p) === 0;
            for (let c = 0; c < dh; c++) if ((dv[j * D + h * dh + c] === 0) !== drop) bad++;
          }
          t.is(bad, 0, `${device} L=${L} head ${h} row ${row}: ${bad} elements of dV disagree with rng.h's mask`);
        }
        const paths = attentionPaths(device, data, Lq, L, D, H, p, seed);
        t.deepEqual(paths.inference, paths.training, `${device} L=${L}: inference and training outputs`);
      }
    }
  });

  // ---- shape ops -------------------------------------------------------------------------------

  test('gatherRows with repeated indices', (t) => {
    parity(t, { name: 'gatherRows', shapes: [[10, 7]], f: ([x]) => ops.gatherRows(x, [3, 3, 0, 9, 1]) });
    parity(t, { name: 'gatherRows one', shapes: [[1, 1]], f: ([x]) => ops.gatherRows(x, [0, 0]) });
    const rng = new Rng(9);
    const idx = Array.from({ length: 500 }, () => rng.int(340));
    parity(t, { name: 'gatherRows big', shapes: [[340, 2048]], f: ([x]) => ops.gatherRows(x, idx) });
  });

  test('concat and slice along each axis, transpose2d', (t) => {
    parity(t, { name: 'concat 0', shapes: [[2, 5], [1, 5], [4, 5]], f: (xs) => ops.concat(xs, 0) });
    parity(t, { name: 'concat 1', shapes: [[3, 2], [3, 7], [3, 1]], f: (xs) => ops.concat(xs, 1) });
    parity(t, { name: 'concat -1 3d', shapes: [[2, 3, 4], [2, 3, 5]], f: (xs) => ops.concat(xs, -1) });
    parity(t, { name: 'concat model', shapes: [[340, 2048], [20, 2048]], f: (xs) => ops.concat(xs, 0) });
    parity(t, { name: 'slice 0', shapes: [[9, 5]], f: ([x]) => ops.slice(x, 0, 2, 7) });
    parity(t, { name: 'slice 1', shapes: [[4, 9, 3]], f: ([x]) => ops.slice(x, 1, 0, 1) });
    parity(t, { name: 'slice model', shapes: [[360, 2048]], f: ([x]) => ops.slice(x, 0, 20, 360) });
    for (const shape of [[1, 1], [17, 33], [340, 2048]]) parity(t, { name: 'transpose2d', shapes: [shape], f: ([x]) => ops.transpose2d(x) });
  });

  // ---- losses, RoI align -----------------------------------------------------------------------

  test('bce, smoothL1, mse with every reduction', (t) => {
    const probs = (i: number, rng: Rng, n: number): Float32Array =>
      i === 0 ? rng.uniformArray(n, 0.05, 0.95) : i === 1 ? Float32Array.from(rng.uniformArray(n, 0, 1), (v) => (v < 0.3 ? 1 : 0)) : rng.uniformArray(n, 0, 2);
    for (const shape of [[1], [17, 5], [340, 21]])
      for (const reduction of ['none', 'mean', 'sum'] as const) {
        parity(t, { name: `bce ${reduction}`, shapes: [shape, shape], f: ([p, y]) => ops.bce(p, y, { reduction }), draw: probs, grad: [0] });
        parity(t, { name: `bce weighted ${reduction}`, shapes: [shape, shape, shape], f: ([p, y, w]) => ops.bce(p, y, { weight: w, reduction }), draw: probs, grad: [0, 2] });
        parity(t, { name: `smoothL1 ${reduction}`, shapes: [shape, shape], f: ([a, b]) => ops.smoothL1(a, b, { reduction }), draw: uniform(-3, 3) });
        parity(t, { name: `smoothL1 beta=0.5 ${reduction}`, shapes: [shape, shape], f: ([a, b]) => ops.smoothL1(a, b, { beta: 0.5, reduction }), draw: uniform(-3, 3) });
        parity(t, { name: `mse ${reduction}`, shapes: [shape, shape], f: ([a, b]) => ops.mse(a, b, { reduction }) });
      }
  });

  test('roiAlign1d', (t) => {
    const rng = new Rng(10);
    const rois = (n: number, T: number): Float32Array => {
      const r = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const s = rng.range(-2, T);
        r[2 * i] = s;
        r[2 * i + 1] = s + rng.range(0, T / 2 + 1);
      }
      return r;
    };
    for (const [T, D, R, bins] of [[1, 3, 2, 1], [1, 4, 3, 12], [17, 5, 7, 4], [340, 2048, 50, 12]]) {
      const rr = rois(R, T);
      for (const samplingRatio of [0, 2])
        for (const aligned of [false, true])
          parity(t, { name: `roiAlign1d T=${T} sr=${samplingRatio} aligned=${aligned}`, shapes: [[T, D]], f: ([x]) => ops.roiAlign1d(x, rr, { bins, samplingRatio, aligned }) });
    }
  });

  // roiParts (stage 2's and TSPNet's max pools over RoI bins, lib/models/hrpro/stage2.ts): three
  // maxOver ranges whose gradients reach the RoI features as blocks, summed (block_copy accumulating)
  // and added to a .grad that already holds values (axpy), over two backward passes. Every value is a
  // max or a difference of two, and every gradient element a sum of the same terms in the same order
  // on both devices (copies, negations, additions rounded once each): exact. Quantised features,
  // so that ties decide the argmax (the first wins); checked on the CPU against the same additions
  // done in JS from the gradient of one pass.
  test('roiParts: values and gradients accumulated into a .grad that already holds values, exactly', async (t) => {
    const { roiParts } = await import('../../lib/models/hrpro/stage2');
    for (const [M, bins, D] of [[7, 12, 16], [50, 12, 256]]) {
      const rng = new Rng(M);
      const roi = Float32Array.from(rng.uniformArray(M * bins * D, -1, 1), (x) => Math.round(x * 4) / 4);
      const g0 = rng.uniformArray(M * bins * D, -1, 1);
      const R = rng.uniformArray(M * 3 * D, -1, 1);
      const run = (device: Device, preset: boolean, passes: number): { y: Float32Array; g: Float32Array } =>
        tidy(() => {
          const x = Tensor.from(roi, [M, bins, D], device);
          x.requiresGrad = true;
          if (preset) x.grad = Tensor.from(g0, [M, bins, D], device).keep();
          let y: Float32Array = new Float32Array(0);
          for (let pass = 0; pass < passes; pass++) {
            const { fusionInput } = roiParts(x, bins);
            y = fusionInput.toArray();
            backward(ops.sumAll(ops.mul(fusionInput, Tensor.from(R, fusionInput.shape, device))));
          }
          const g = x.grad!.toArray();
          x.grad!.dispose();
          x.grad = null;
          return { y, g };
        });
      const got = run('cuda', true, 2);
      const want = run('cpu', true, 2);
      t.deepEqual(got.y, want.y, `M=${M} D=${D}: the fusion input`);
      t.deepEqual(got.g, want.g, `M=${M} D=${D}: the accumulated gradient`);
      const once = run('cpu', false, 1).g;
      const byHand = g0.map((a, i) => Math.fround(Math.fround(a + once[i]) + once[i]));
      t.deepEqual(want.g, byHand, `M=${M} D=${D}: the preset gradient plus two passes'`);
      t.true(once.some((x) => x !== 0), 'the pass has a gradient');
    }
  });

  // ---- post-processing (host arrays in, host arrays out: as lib/postprocess calls them) ----------

  function compareRows(t: ExecutionContext, what: string, got: Float64Array, want: Float64Array): void {
    t.is(got.length, want.length, `${what}: number of rows`);
    for (let i = 2; i < want.length; i += 4) t.is(got[i], want[i], `${what}: class of row ${(i - 2) / 4}`);
    compare(t, what, got, want);
  }

  function randomRows(rng: Rng, n: number, classes: number): Float64Array {
    const rows = new Float64Array(4 * n);
    for (let i = 0; i < n; i++) {
      const s = rng.range(0, 100);
      rows.set([s, s + rng.range(0.5, 20), rng.int(classes), rng.range(0.01, 1)], 4 * i);
    }
    return rows;
  }

  test('upsample_linear', (t) => {
    const rng = new Rng(11);
    for (const [T, Cc, scale] of [[1, 1, 2], [1, 3, 4], [37, 3, 2], [340, 21, 2], [340, 21, 3.5]]) {
      const x = rng.uniformArray(T * Cc, 0, 1);
      compare(t, `upsample_linear T=${T} C=${Cc} scale=${scale}`, C.upsample_linear(x, T, Cc, scale), P.upsample_linear(x, T, Cc, scale));
    }
  });

  test('oic_proposals', (t) => {
    const rng = new Rng(12);
    const o = defaultProposalOptions();
    for (const [T, Cc, classes] of [[1, 2, [0]], [50, 4, [0, 2]], [340, 20, [1, 5, 19]]] as [number, number, number[]][]) {
      // smooth class scores, so that proposals span several snippets
      const cas = new Float32Array(T * Cc);
      for (let c = 0; c < Cc; c++) {
        const phase = rng.range(0, 6.28);
        for (let i = 0; i < T; i++) cas[i * Cc + c] = 0.5 + 0.45 * Math.sin(i / 7 + phase) * rng.range(0.7, 1);
      }
      const agnostic = Float32Array.from({ length: T }, (_, i) => 0.5 + 0.4 * Math.cos(i / 5));
      const vid = rng.uniformArray(Cc, 0, 1);
      for (const anyQuirk of [false, true]) {
        const call = (A: NativeAddon): Float64Array =>
          A.oic_proposals(cas, agnostic, T, Cc, Int32Array.from(classes), vid, Float64Array.from(o.casThresholds), Float64Array.from(o.agnosticThresholds),
            o.lambda, o.gamma, o.scale, o.secondsPerSnippet / o.scale, anyQuirk);
        const want = call(P);
        if (T > 1) t.true(want.length > 0, 'the case produces proposals');
        compareRows(t, `oic_proposals T=${T} quirk=${anyQuirk}`, call(C), want);
      }
    }
  });

  test('soft_nms: each method, both IoU conventions', (t) => {
    const rng = new Rng(13);
    for (const n of [1, 7, 200]) {
      const rows = randomRows(rng, n, 3);
      for (const method of [0, 1, 2])
        for (const plusOne of [true, false])
          compareRows(t, `soft_nms n=${n} method=${method} plusOne=${plusOne}`, C.soft_nms(rows, method, 0.3, 0.7, plusOne), P.soft_nms(rows, method, 0.3, 0.7, plusOne));
    }
  });

  test('boundary_adaptation', (t) => {
    const rng = new Rng(14);
    for (const n of [1, 9, 150])
      for (const thr of [0, 0.4]) {
        const rows = randomRows(rng, n, 4);
        compareRows(t, `boundary_adaptation n=${n} thr=${thr}`, C.boundary_adaptation(rows, thr), P.boundary_adaptation(rows, thr));
      }
  });

  // ---- threads: each has its own stream, cuBLAS handle and TF32 flag -----------------------------

  /**
   * A worker thread running `body` (CommonJS, with ts-node registered first, so it can require
   * lib/): next() is its next message (rejected if it fails or exits first).
   */
  function thread(body: string, workerData: unknown = null): { worker: Worker; next: () => Promise<Record<string, unknown>> } {
    const source = `require(${JSON.stringify(path.join(ROOT, 'node_modules', 'ts-node'))}).register({ transpileOnly: true });\n${body}`;
    const worker = new Worker(source, { eval: true, workerData });
    const queue: Record<string, unknown>[] = [];
    const waiting: [(m: Record<string, unknown>) => void, (e: Error) => void][] = [];
    let failed: Error | null = null;
    worker.on('message', (m) => {
      const w = waiting.shift();
      if (w) w[0](m);
      else queue.push(m);
    });
    const fail = (e: Error): void => {
      failed ??= e;
      for (const [, reject] of waiting.splice(0)) reject(e);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the worker exited (code ${code})`)));
    const next = (): Promise<Record<string, unknown>> =>
      queue.length ? Promise.resolve(queue.shift()!) : failed ? Promise.reject(failed) : new Promise((resolve, reject) => waiting.push([resolve, reject]));
    return { worker, next };
  }

  const req = (file: string): string => `require(${JSON.stringify(path.join(ROOT, file))})`;

  // Work for one thread, as source (run on this thread and on workers): GEMMs (linear with relu and
  // dropout), attention with dropout forward and backward, and buffers of a size that changes every
  // round (the cache hands blocks back within the thread); returns a digest of every output.
  const THREAD_WORK = `
    const ops = ${req('lib/ops')};
    const { Tensor, tidy } = ${req('lib/tensor/tensor')};
    const { backward } = ${req('lib/tensor/autograd')};
    const { Rng } = ${req('lib/util/rng')};
    const { cuda } = ${req('lib/runtime/backend')};
    cuda().set_tf32(false);
    const hash = require('crypto').createHash('sha256');
    const rng = new Rng(5);
    for (let round = 0; round < 12; round++)
      tidy(() => {
        const scratch = Tensor.zeros([1000 + 37 * round * round], 'cuda');
        const a = Tensor.from(rng.uniformArray(300 * 512, -1, 1), [300, 512], 'cuda');
        const w = Tensor.from(rng.uniformArray(512 * 512, -1, 1), [512, 512], 'cuda');
        const y = ops.linear(a, w, null, { relu: true, dropout: { p: 0.1, seed: round } });
        const [q, k, v] = [0, 1, 2].map(() => Tensor.from(rng.uniformArray(200 * 64, -1, 1), [200, 64], 'cuda'));
        for (const x of [q, k, v]) x.requiresGrad = true;
        const o = ops.scaledDotProductAttention(q, k, v, 8, 0.1, round);
        backward(ops.sumAll(ops.mul(o, o)));
        scratch.dispose();
        for (const x of [y, o, q.grad, k.grad, v.grad]) hash.update(Buffer.from(x.toArray().buffer));
      });
    return hash.digest('hex');
  `;

  test.serial('two worker threads running CUDA ops at once each get this thread\'s bits', async (t) => {
    t.timeout(5 * 60_000);
    const expected = new Function('require', THREAD_WORK)(require) as string;
    // each loads the addon, says so, and starts when both have (so that their work overlaps)
    const body = `
      const { parentPort } = require('worker_threads');
      ${req('lib/runtime/backend')}.cuda();
      parentPort.postMessage({ ready: true });
      parentPort.once('message', () => {
        try {
          parentPort.postMessage({ digest: (() => { ${THREAD_WORK} })() });
        } catch (e) {
          parentPort.postMessage({ error: String((e && e.stack) || e) });
        }
      });
    `;
    const workers = [thread(body), thread(body)];
    try {
      for (const w of workers) t.true((await w.next()).ready === true);
      for (const w of workers) w.worker.postMessage('go');
      const results = await Promise.all(workers.map((w) => w.next()));
      for (const [i, r] of results.entries()) {
        t.falsy(r.error, `worker ${i}: ${r.error}`);
        t.is(r.digest, expected, `worker ${i}'s outputs differ from this thread's`);
      }
    } finally {
      await Promise.all(workers.map((w) => w.worker.terminate()));
    }
  });

  // GEMMs for the TF32 case: a digest of matmul outputs at whatever the thread's flag is.
  const GEMM_WORK = `
    const ops = ${req('lib/ops')};
    const { Tensor, tidy } = ${req('lib/tensor/tensor')};
    const { Rng } = ${req('lib/util/rng')};
    const hash = require('crypto').createHash('sha256');
    const rng = new Rng(6);
    for (let round = 0; round < 8; round++)
      tidy(() => {
        const a = Tensor.from(rng.uniformArray(256 * 512, -1, 1), [256, 512], 'cuda');
        const b = Tensor.from(rng.uniformArray(512 * 384, -1, 1), [512, 384], 'cuda');
        hash.update(Buffer.from(ops.matmul(a, b).toArray().buffer));
      });
    return hash.digest('hex');
  `;

  test.serial('the TF32 flag is per thread: set in one worker, another worker and this thread keep theirs', async (t) => {
    t.timeout(5 * 60_000);
    const gemms = (): string => new Function('require', GEMM_WORK)(require) as string;
    setTf32(true);
    const tf32Digest = gemms();
    setTf32(false);
    const fp32Digest = gemms();
    t.not(tf32Digest, fp32Digest, 'TF32 changes these products (else this test could not tell the flags apart)');
    // a new thread starts from PSTAL_TF32 (read when the addon loaded); worker A sets the other value
    const initial = process.env.PSTAL_TF32 === '1';
    const body = `
      const { parentPort, workerData } = require('worker_threads');
      const C = ${req('lib/runtime/backend')}.cuda();
      if (workerData.set !== undefined) C.set_tf32(workerData.set);
      parentPort.postMessage({ tf32: C.gemm_info().tf32 });
      parentPort.once('message', () => {
        try {
          const digest = (() => { ${GEMM_WORK} })();
          parentPort.postMessage({ tf32: C.gemm_info().tf32, digest });
        } catch (e) {
          parentPort.postMessage({ error: String((e && e.stack) || e) });
        }
      });
    `;
    const a = thread(body, { set: !initial });
    const b = thread(body, {});
    try {
      t.is((await a.next()).tf32, !initial, 'worker A has the flag it set');
      t.false(C.gemm_info().tf32, 'this thread\'s flag is unchanged by worker A');
      t.is((await b.next()).tf32, initial, 'worker B, started after A set its flag, starts from PSTAL_TF32');
      a.worker.postMessage('go');
      b.worker.postMessage('go');
      const [ra, rb] = await Promise.all([a.next(), b.next()]);
      t.falsy(ra.error, String(ra.error));
      t.falsy(rb.error, String(rb.error));
      t.is(ra.tf32, !initial);
      t.is(rb.tf32, initial);
      t.is(ra.digest, !initial ? tf32Digest : fp32Digest, 'worker A\'s products are those of its flag');
      t.is(rb.digest, initial ? tf32Digest : fp32Digest, 'worker B\'s products are those of its flag, while A ran beside it');
      t.false(C.gemm_info().tf32);
      t.is(gemms(), fp32Digest, 'this thread still computes in fp32');
    } finally {
      await Promise.all([a.worker.terminate(), b.worker.terminate()]);
    }
  });

  // The cache keeps a freed block under the stream it was freed on: kernels queued earlier on that
  // stream may still read it, so it is not handed to another thread's stream while that thread
  // lives. When the worker ends, its stream is drained and destroyed and the block is kept for any
  // thread (native/cuda/memory.cu). Deltas of cachedBytes around synchronous steps (no finalizer
  // runs inside them), for a size of its own (5 MiB, a size class of its own).
  test.serial('a block freed by a worker thread goes to no other stream while the worker lives, and is reused after it ends', async (t) => {
    const N = (5 << 20) / 4;
    const K = 5 << 20;
    C.release_cached_buffers();
    const w = thread(`
      const { parentPort } = require('worker_threads');
      const C = ${req('lib/runtime/backend')}.cuda();
      const b = new C.NativeBuffer(${N});
      b.dispose();
      parentPort.postMessage({ cached: C.memory_stats().cachedBytes });
      parentPort.on('message', () => {}); // alive until terminated
    `);
    let mine: NativeBuffer | null = null;
    let again: NativeBuffer | null = null;
    try {
      const m = await w.next();
      t.true((m.cached as number) >= K, 'the worker\'s block is cached');
      const c1 = C.memory_stats().cachedBytes;
      mine = new C.NativeBuffer(N);
      t.is(C.memory_stats().cachedBytes, c1, 'a buffer here is not given the block of the live worker\'s stream');
      await w.worker.terminate();
      const c2 = C.memory_stats().cachedBytes;
      t.true(c2 >= K, 'the block outlives the worker (kept, not freed)');
      again = new C.NativeBuffer(N);
      t.is(C.memory_stats().cachedBytes, c2 - K, 'and is reused here once the worker has ended');
      t.deepEqual(Array.from(again.read(0, 4)), [0, 0, 0, 0]);
    } finally {
      await w.worker.terminate();
      mine?.dispose();
      again?.dispose();
      C.release_cached_buffers();
    }
  });

  // ---- end to end --------------------------------------------------------------------------------

  // What the end-to-end cases share, each made once: a temporary folder, a clean synthetic dataset
  // (D = 32) and a small trained HR-Pro run with its data (test/helpers/tiny-run.ts).
  const e2eRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-cuda-e2e-'));
  test.after.always(() => fs.rmSync(e2eRoot, { recursive: true, force: true }));
  const once = <T>(make: () => Promise<T>): (() => Promise<T>) => {
    let made: Promise<T> | undefined;
    return () => (made ??= make());
  };
  const D_E2E = 32;
  const cleanDataset = once(async () => {
    const { synthesizeDataset } = await import('../../lib/data/synth');
    const { loadConfig, loadDataset } = await import('../../lib/data');
    const knobs = { durationScale: 0.35, noiseStd: 0.1, sceneStrength: 0, latentNoiseStrength: 0, contextStrength: 0, styleStrength: 0, mixIn: 0, classCorrelation: 0 };
    const dir = path.join(e2eRoot, 'clean');
    await synthesizeDataset({ out: dir, dim: D_E2E, seed: 7, videos: 24, knobs });
    return loadDataset(dir, loadConfig('thumos14', { featureDim: D_E2E }));
  });
  const trainedRun = once(async () => {
    const { tinyRun } = await import('../helpers/tiny-run');
    const { loadConfig, loadDataset } = await import('../../lib/data');
    const dir = path.join(e2eRoot, 'tiny');
    fs.mkdirSync(dir);
    const run = await tinyRun(dir, { dim: D_E2E });
    return { ...run, dataset: loadDataset(path.join(dir, 'data'), loadConfig('thumos14', { featureDim: D_E2E })) };
  });

  /** Per-step loss terms, cuda against cpu: relative, with a floor (a term ~0 on both devices differs only by rounding). */
  function compareLosses(t: ExecutionContext, names: string[], losses: Record<Device, number[][]>, steps: number): void {
    t.is(losses.cpu.length, steps, 'steps on cpu');
    t.is(losses.cuda.length, steps, 'steps on cuda');
    losses.cpu.forEach((want, step) =>
      want.forEach((w, k) => {
        const g = losses.cuda[step][k];
        t.true(Math.abs(g - w) <= 1e-3 * Math.max(Math.abs(w), 1e-4), `step ${step + 1}, loss ${names[k]}: cuda ${g}, cpu ${w}`);
      }),
    );
    t.log(`${names[0]} by step (cpu / cuda): ${losses.cpu.map((l, i) => `${l[0].toFixed(5)}/${losses.cuda[i][0].toFixed(5)}`).join(', ')}`);
  }

  test.serial('stage-1 training: the same losses on cuda as on cpu for the same seed', async (t) => {
    t.timeout(10 * 60_000);
    const { trainStage1 } = await import('../../lib/models/hrpro/train_stage1');
    const { stage1ConfigFrom } = await import('../../lib/models/hrpro/config');
    const ds = await cleanDataset();
    const cfg = stage1ConfigFrom(ds.config, { iterations: 6, testEvery: 6, seed: 3, lr: 3e-3, batchSize: 4 });
    const losses: Record<Device, number[][]> = { cpu: [], cuda: [] };
    for (const device of ['cpu', 'cuda'] as const) {
      const r = await trainStage1(
        {
          out: path.join(e2eRoot, `stage1-${device}`), classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous,
          blockedVideos: [], quiet: true, device,
          onIteration: (_, l) => losses[device].push([l.total, l.video, l.frame, l.background, l.contrastive]),
        },
        cfg,
      );
      r.model.dispose();
    }
    compareLosses(t, ['total', 'video', 'frame', 'background', 'contrastive'], losses, 6);
  });

  // Stage 2 from a trained stage 1's proposals (the same file for both devices): RoI align, the
  // boundary-completeness regressor, the score and regression losses, one Adam step a batch.
  test.serial('stage-2 training: the same losses on cuda as on cpu for the same seed', async (t) => {
    t.timeout(10 * 60_000);
    const { trainStage2 } = await import('../../lib/models/hrpro/train_stage2');
    const { stage2ConfigFrom } = await import('../../lib/models/hrpro/config');
    const { readProposals, PROPOSALS_FILE } = await import('../../lib/formats/proposals');
    const tiny = await trainedRun();
    const ds = tiny.dataset;
    const proposals = readProposals(path.join(tiny.run, PROPOSALS_FILE));
    const cfg = stage2ConfigFrom(ds.config, { epochs: 1, testEvery: 1, batchSize: 4, seed: 3 });
    const losses: Record<Device, number[][]> = { cpu: [], cuda: [] };
    for (const device of ['cpu', 'cuda'] as const) {
      const r = await trainStage2(
        {
          out: path.join(e2eRoot, `stage2-${device}`), classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous,
          blockedVideos: [], quiet: true, log: () => undefined, device, proposals,
          onBatch: (_, l) => losses[device].push([l.total, l.score, l.reg]),
        },
        cfg,
      );
      r.model.dispose();
    }
    t.true(losses.cpu.length >= 1);
    compareLosses(t, ['total', 'score', 'reg'], losses, losses.cpu.length);
  });

  // TSPNet on the HR-Pro run's stage-2 detections (made once, on the CPU, so both devices train on
  // the same proposals files); no point update (a score on either side of its threshold would
  // change the labels, not the arithmetic under test).
  test.serial('TSPNet training: the same losses on cuda as on cpu for the same seed', async (t) => {
    t.timeout(10 * 60_000);
    const { prepareProposals, train } = await import('../../lib/models/tspnet/run');
    const { tspnetPaths } = await import('../../lib/models/tspnet/checkpoint');
    const tiny = await trainedRun();
    const base = path.join(e2eRoot, 'tspnet-base');
    prepareProposals({ dataset: tiny.dataset, out: base, base: tiny.run, baseStage: 2, device: 'cpu', quiet: true });
    const files = tspnetPaths(base);
    const config = { iterations: 4, testEvery: 4, updateEvery: 0, checkpointEvery: 0, batchSize: 4, maxProposals: 6, lr: 1e-3, seed: 5 };
    const losses: Record<Device, number[][]> = { cpu: [], cuda: [] };
    for (const device of ['cpu', 'cuda'] as const)
      await train({
        dataset: tiny.dataset, out: path.join(e2eRoot, `tspnet-${device}`), proposalsTrain: files.proposalsTrain, proposalsTest: files.proposalsTest,
        config, device, quiet: true, log: () => undefined,
        onIteration: (_, l) => losses[device].push([l.total, l.point, l.saliency]),
      });
    compareLosses(t, ['total', 'point', 'saliency'], losses, 4);
  });

  // createDetector on device 'cuda' against detect() of the same model on this thread, exactly: the
  // first `count` videos sent at once; `tf32` for the workers and, for the comparison, this thread.
  const detectorAgainstThisThread = async (t: ExecutionContext, o: { workers: number; count: number; tf32?: boolean }) => {
    const { createDetector } = await import('../../lib/serve');
    const { loadHrPro, detect } = await import('../../lib/models/hrpro/detect');
    const { readNpy } = await import('../../lib/data/npy');
    const tiny = await trainedRun();
    const videos = tiny.features.slice(0, o.count).map((f) => readNpy(f));
    const detector = await createDetector({ model: tiny.run, workers: o.workers, device: 'cuda', ...(o.tf32 === undefined ? {} : { tf32: o.tf32 }) });
    const model = loadHrPro(tiny.run, { device: 'cuda' });
    if (o.tf32) setTf32(true);
    try {
      const got = await Promise.all(videos.map((v, i) => detector.detect(v, { name: `v${i}` })));
      for (const [i, v] of videos.entries()) t.deepEqual(got[i].detections, detect(model, v, { name: `v${i}` }).detections, `video ${i}`);
      return got;
    } finally {
      if (o.tf32) setTf32(false);
      model.dispose();
      await detector.close();
    }
  };

  // createDetector's worker threads on device 'cuda' (lib/serve: each worker its own stream and
  // cuBLAS handle), two at once: the detections of the same model run on this thread, exactly.
  test.serial('createDetector on cuda with two workers: the detections of detect() on this thread', async (t) => {
    t.timeout(10 * 60_000);
    const got = await detectorAgainstThisThread(t, { workers: 2, count: 8 });
    t.true(got.some((r) => r.detections.length > 0), 'some detections');
  });

  // tf32: the workers' own setting (TF32 is per thread): the detections of this thread with TF32 on.
  test.serial('createDetector on cuda with tf32: the detections of detect() on this thread with setTf32(true)', async (t) => {
    t.timeout(10 * 60_000);
    await detectorAgainstThisThread(t, { workers: 1, count: 4, tf32: true });
  });
}
