/**
 * ops.ts: per-op throughput at HR-Pro's shapes (T = 340 snippets, D = 2048, attention over
 * T + 20 tokens, FFN width 128), one full Reliability-aware Attention Block forward + backward,
 * and our GEMM against OpenBLAS side by side in the same run (when libopenblas is installed).
 * With `--device cuda` the same rows run on the GPU (cuBLAS GEMM in float32 beside TF32); every
 * timed call ends with the addon's synchronize(), since CUDA ops return before the GPU is done.
 */
import * as ops from '../lib/ops';
import { Tensor, tidy } from '../lib/tensor/tensor';
import { backward } from '../lib/tensor/autograd';
import { cpu, NativeAddon } from '../lib/runtime/native';
import { cuda, Device } from '../lib/runtime/backend';
import { Rng } from '../lib/util/rng';
import { BenchResult, timeIt } from './harness';

const T = 340;
const D = 2048;
const L = T + 20;

let device: Device = 'cpu';

function rand(rng: Rng, shape: number[]): Tensor {
  return Tensor.from(rng.uniformArray(shape.reduce((a, b) => a * b, 1), -1, 1), shape, device).keep();
}

export async function benchOps(options: { quick?: boolean; device?: Device } = {}): Promise<BenchResult[]> {
  device = options.device ?? 'cpu';
  const rng = new Rng(1);
  const reps = options.quick ? 3 : 7;
  const out: BenchResult[] = [];
  // cuda() throws the loader's message (what is missing, how to build it) where there is no GPU.
  const B: NativeAddon = device === 'cuda' ? cuda() : cpu();
  // Times fn to completion on the device (a CUDA op only queues work).
  const time = (fn: () => void): number => (device === 'cuda' ? timeIt(() => (fn(), cuda().synchronize()), reps) : timeIt(fn, reps));

  // GEMM [340 x 2048] x [2048 x 2048] on cuBLAS: float32 (the default) beside TF32 tensor cores.
  if (device === 'cuda') {
    const a = rand(rng, [T, D]);
    const b = rand(rng, [D, D]);
    const c = Tensor.zeros([T, D], device).keep();
    const flops = 2 * T * D * D;
    const run = (): void => B.matmul_forward(c.buffer, a.buffer, b.buffer, 1, T, D, D, false, false, 0, 0);
    const G = cuda();
    const tf32 = G.gemm_info().tf32 as boolean;
    G.set_tf32(false);
    const fp32 = flops / time(run) / 1e9;
    G.set_tf32(true);
    const tf = flops / time(run) / 1e9;
    G.set_tf32(tf32);
    out.push({ name: `sgemm [${T}x${D}]x[${D}x${D}] cuBLAS fp32`, value: fp32, unit: 'GFLOP/s', baseline: tf, baselineName: 'TF32' });
    for (const t of [a, b, c]) t.dispose();
  }

  // GEMM [340 x 2048] x [2048 x 2048]: ours and OpenBLAS, alternating in one run.
  if (device === 'cpu') {
    const a = rand(rng, [T, D]);
    const b = rand(rng, [D, D]);
    const c = Tensor.zeros([T, D]).keep();
    const flops = 2 * T * D * D;
    const run = (): void => B.matmul_forward(c.buffer, a.buffer, b.buffer, 1, T, D, D, false, false, 0, 0);
    const hasBlas = B.gemm_info().openblasAvailable as boolean;
    const ours: number[] = [];
    const blas: number[] = [];
    for (let round = 0; round < 3; round++) {
      B.set_gemm_impl('pstal');
      ours.push(flops / timeIt(run, reps) / 1e9);
      if (hasBlas) {
        B.set_gemm_impl('openblas');
        blas.push(flops / timeIt(run, reps) / 1e9);
        // OpenBLAS's idle workers spin for a while after a call; let them sleep before we time ours.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      }
    }
    B.set_gemm_impl('pstal');
    const med = (x: number[]): number => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
    out.push({
      name: `sgemm [${T}x${D}]x[${D}x${D}]`, value: med(ours), unit: 'GFLOP/s',
      ...(hasBlas ? { baseline: med(blas), baselineName: 'OpenBLAS' } : {}),
    });
    for (const t of [a, b, c]) t.dispose();
  }

  const opBench = (name: string, flops: number, setup: () => Tensor[], f: (xs: Tensor[]) => Tensor, withBackward = true): void => {
    const xs = setup();
    for (const x of xs) x.requiresGrad = true;
    const fwd = time(() => tidy(() => void f(xs)));
    out.push({ name: `${name} forward`, value: flops ? flops / fwd / 1e9 : fwd * 1e3, unit: flops ? 'GFLOP/s' : 'ms' });
    if (withBackward) {
      // backpropagate a given gradient of ones: backward(sumAll(y)) timed the reduction over y and
      // its broadcast back too (3.9 of 4.3 ms for relu on [360x2048]), not the op's own backward
      const ones = tidy(() => Tensor.full(f(xs).shape, 1, device).keep());
      const fb = time(() =>
        tidy(() => {
          const y = f(xs);
          backward(y, ones);
          for (const x of xs) {
            x.grad?.dispose();
            x.grad = null;
          }
        }));
      out.push({ name: `${name} forward+backward`, value: flops ? (3 * flops) / fb / 1e9 : fb * 1e3, unit: flops ? 'GFLOP/s' : 'ms' });
      ones.dispose();
    }
    for (const x of xs) x.dispose();
  };

  opBench('linear [340x2048] -> 2048', 2 * T * D * D, () => [rand(rng, [T, D]), rand(rng, [D, D])], ([x, w]) => ops.matmul(x, w, { transB: true }));
  opBench('conv1d k=3 [340x2048] -> 2048', 2 * T * D * D * 3, () => [rand(rng, [T, D]), rand(rng, [D, D, 3]), rand(rng, [D])], ([x, w, b]) => ops.conv1d(x, w, b, 1));
  opBench('attention core L=360 D=2048 h=8', 4 * L * L * D, () => [rand(rng, [L, D]), rand(rng, [L, D]), rand(rng, [L, D])], ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, 8, 0.1, 3));
  opBench('FFN linear1 [360x2048] -> 128', 2 * L * D * 128, () => [rand(rng, [L, D]), rand(rng, [128, D])], ([x, w]) => ops.matmul(x, w, { transB: true }));
  opBench('layerNorm [360x2048]', 0, () => [rand(rng, [L, D]), rand(rng, [D]), rand(rng, [D])], ([x, w, b]) => ops.layerNorm(x, w, b));
  opBench('softmax [8x360x360]', 0, () => [rand(rng, [8 * L, L])], ([x]) => ops.softmax(x));
  opBench('relu [360x2048]', 0, () => [rand(rng, [L, D])], ([x]) => ops.relu(x));
  opBench('add broadcast bias [360x2048]+[2048]', 0, () => [rand(rng, [L, D]), rand(rng, [D])], ([x, b]) => ops.add(x, b));
  return out;
}
