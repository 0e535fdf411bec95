/**
 * bf16.ts: the BF16 GEMM checks (set_gemm_precision('bf16')), shared by test/unit/bf16.test.ts (the real
 * AVX512-BF16 kernel, where the CPU has it) and test/unit/bf16-emulated.test.ts (PSTAL_GEMM_BF16=emulate,
 * the AVX2 emulation of vdpbf16ps, on any AVX2 CPU).
 *
 * Tolerances, derived rather than chosen:
 *  - against float64 on the float32 operands: bf16 keeps 8 significant bits, so rounding an operand
 *    to nearest even moves it by at most u = 2^-8 of itself, a product by at most (2u + u^2) of |a b|,
 *    and the float32 accumulation of K terms (plus alpha, beta) adds at most (K + 3) 2^-24 of
 *    sum |a b|: |err_ij| <= (2^-7 + 2^-16 + (K + 3) 2^-24) sum_k |a_ik b_kj| (+ 2^-23 |beta c|).
 *  - against float64 on the bf16-rounded operands (what the kernel must compute exactly up to its
 *    float32 sums): the products are exact, leaving (K + 3) 2^-24 sum |a b|. This one catches a
 *    wrong pair order or packing that the first, looser check could let through.
 */
import type { ExecutionContext } from 'ava';
import { cpu, setGemmPrecision, getGemmPrecision } from '../../lib/runtime/native';
import { Tensor, tidy } from '../../lib/tensor/tensor';
import { Rng } from '../../lib/util/rng';
import * as ops from '../../lib/ops';
import { Stage1Model } from '../../lib/models/hrpro/stage1';
import { Stage1Video, pointMatrix } from '../../lib/models/hrpro/videos';
import { stage1Step, initMemory } from '../../lib/models/hrpro/train_stage1';
import { STAGE1_TRAIN_DEFAULTS } from '../../lib/models/hrpro/config';
import { Adam } from '../../lib/nn/optim';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** x rounded to bfloat16 (nearest even), as a number. */
export function bf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  u32[0] = (((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32[0];
}

function randn(n: number, rng: Rng, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

interface Case {
  M: number;
  N: number;
  K: number;
  ta: boolean;
  tb: boolean;
  beta: number;
  batch: number;
}

/** One product through matmul_forward at the current precision, and its worst error ratios. */
function check(c: Case, rng: Rng): { loose: number; exact: number; out: Float32Array } {
  const { M, N, K, ta, tb, beta, batch } = c;
  const A = randn(batch * M * K, rng);
  const B = randn(batch * K * N, rng, 0.5);
  const C0 = randn(batch * M * N, rng);
  const A_ = cpu().NativeBuffer, a = new A_(A), b = new A_(B), out = new A_(C0);
  cpu().matmul_forward(out, a, b, batch, M, N, K, ta, tb, M * K, K * N, beta);
  const got = out.read();
  a.dispose();
  b.dispose();
  out.dispose();
  let loose = 0;
  let exact = 0;
  for (let bi = 0; bi < batch; bi++) {
    const ao = bi * M * K, bo = bi * K * N;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let ref = 0, refBf = 0, abs = 0;
        for (let k = 0; k < K; k++) {
          const x = A[ao + (ta ? k * M + i : i * K + k)], y = B[bo + (tb ? j * K + k : k * N + j)];
          ref += x * y;
          refBf += bf16(x) * bf16(y);
          abs += Math.abs(x * y);
        }
        const cij = C0[bi * M * N + i * N + j];
        const g = got[bi * M * N + i * N + j];
        const bc = Math.abs(beta * cij) * 2 ** -23;
        const sumErr = (K + 3) * 2 ** -24 * abs * 1.01 + bc + 1e-30;
        loose = Math.max(loose, Math.abs(g - (ref + beta * cij)) / ((2 ** -7 + 2 ** -16) * abs * 1.01 + sumErr));
        exact = Math.max(exact, Math.abs(g - (refBf + beta * cij)) / sumErr);
      }
  }
  return { loose, exact, out: got };
}

/** Every transposition the models use, odd sizes, edges of the micro-tile and of a depth block. */
export const CASES: Case[] = (() => {
  const cs: Case[] = [];
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 33, 3], [7, 1, 2], [9, 17, 5], [13, 50, 31], [37, 33, 385], [8, 32, 64], [25, 70, 400],
  ];
  for (const [M, N, K] of shapes)
    for (const ta of [false, true]) for (const tb of [false, true]) cs.push({ M, N, K, ta, tb, beta: 0, batch: 1 });
  cs.push({ M: 11, N: 19, K: 23, ta: false, tb: true, beta: 1, batch: 3 }); // accumulate into C (beta), batched
  cs.push({ M: 90, N: 130, K: 260, ta: false, tb: false, beta: 0, batch: 1 }); // big enough to split over threads
  return cs;
})();

export function gemmCases(t: ExecutionContext): void {
  const rng = new Rng(7);
  setGemmPrecision('bf16');
  t.is(getGemmPrecision(), 'bf16');
  let worstLoose = 0, worstExact = 0, bf16Err = 0;
  try {
    for (const c of CASES) {
      const r = check(c, rng);
      const what = `${c.batch}x[${c.M}x${c.K}]${c.ta ? '^T' : ''} [${c.K}x${c.N}]${c.tb ? '^T' : ''} beta ${c.beta}`;
      t.true(r.loose <= 1, `${what}: error ${r.loose.toFixed(3)} of the bf16 bound against float64`);
      t.true(r.exact <= 1, `${what}: error ${r.exact.toFixed(3)} of the float32-sum bound against bf16 operands`);
      worstLoose = Math.max(worstLoose, r.loose);
      worstExact = Math.max(worstExact, r.exact);
    }
    // the rounding is really there: a product of float32 values that bf16 cannot hold differs from float32's
    const r = check({ M: 16, N: 16, K: 64, ta: false, tb: false, beta: 0, batch: 1 }, new Rng(3));
    setGemmPrecision('fp32');
    const r32 = check({ M: 16, N: 16, K: 64, ta: false, tb: false, beta: 0, batch: 1 }, new Rng(3));
    for (let i = 0; i < r.out.length; i++) bf16Err = Math.max(bf16Err, Math.abs(r.out[i] - r32.out[i]));
    t.true(bf16Err > 1e-3, `bf16 and fp32 results differ (${bf16Err})`);
  } finally {
    setGemmPrecision('fp32');
  }
  t.log(`worst error / bound: ${worstLoose.toFixed(3)} (bf16 vs float64), ${worstExact.toFixed(3)} (float32 sums)`);
}

/** conv1d (im2col GEMM) and attention (per-head GEMMs) in bf16 stay near fp32; fp32 again is bit-identical. */
export function opsCases(t: ExecutionContext): void {
  const rng = new Rng(11);
  const T = 29, D = 48;
  const x = Tensor.from(randn(T * D, rng), [T, D]);
  const w = Tensor.from(randn(D * D * 3, rng, 0.1), [D, D, 3]);
  const run = () => tidy(() => ops.conv1d(x, w, null, 1).toArray());
  const y32 = run();
  setGemmPrecision('bf16');
  const y16 = run();
  setGemmPrecision('fp32');
  const again = run();
  t.deepEqual(Array.from(again), Array.from(y32), 'fp32 after bf16: bit-identical');
  let num = 0, den = 0;
  for (let i = 0; i < y32.length; i++) {
    num += (y16[i] - y32[i]) ** 2;
    den += y32[i] ** 2;
  }
  // relative RMS error of a dot product with both operands rounded (each by a uniform share of at most
  // u = 2^-8, RMS u / sqrt(3)): about u sqrt(2/3) ~ 3.2e-3; the bounds leave a factor of 2.5 either way
  const rel = Math.sqrt(num / den);
  t.true(rel > 1.3e-3 && rel < 8e-3, `conv1d bf16 relative RMS error ${rel}`);
  x.dispose();
  w.dispose();
}

/** A tiny HR-Pro stage-1 model trained in bf16: the loss goes down, and starts where fp32's does. */
export function trainingCase(t: ExecutionContext): void {
  const C = 3, D = 32;
  const rng = new Rng(5);
  const videos: Stage1Video[] = [];
  for (let v = 0; v < 4; v++) {
    const T = 40 + 7 * v;
    const cls = v % C;
    const features = randn(T * D, rng, 0.5);
    for (let s = 10; s < 25; s++) for (let d = 0; d < 8; d++) features[s * D + cls * 8 + d] += 2; // the action
    const videoLabel = new Float32Array(C);
    videoLabel[cls] = 1;
    videos.push({ name: `v${v}`, T, D, features, videoLabel, points: [{ snippet: 17, classIndex: cls, time: 17 * 0.64 }], gt: [] });
  }
  const points = new Map(videos.map((v) => [v.name, pointMatrix(v, C)]));
  const train = (precision: 'fp32' | 'bf16', steps: number): number[] => {
    const model = new Stage1Model({ featureDim: D, numClasses: C }, new Rng(1));
    initMemory(model, videos);
    const adam = new Adam(model.parameters(), { lr: 1e-3 });
    setGemmPrecision(precision);
    try {
      return Array.from({ length: steps }, () => stage1Step(model, adam, videos, points, STAGE1_TRAIN_DEFAULTS).total);
    } finally {
      setGemmPrecision('fp32');
      adam.dispose();
      model.dispose();
    }
  };
  const l16 = train('bf16', 12);
  const l32 = train('fp32', 1);
  t.log(`bf16 losses ${l16.map((x) => x.toFixed(4)).join(' ')}; fp32 first ${l32[0].toFixed(4)}`);
  t.true(l16.every(Number.isFinite));
  t.true(Math.abs(l16[0] - l32[0]) / l32[0] < 0.02, 'the first (forward) loss agrees with fp32 to 2 %');
  const head = (l16[0] + l16[1]) / 2, tail = (l16[10] + l16[11]) / 2;
  t.true(tail < 0.9 * head, `loss decreases (${head} -> ${tail})`);
}
