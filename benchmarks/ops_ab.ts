/**
 * ops_ab.ts: single ops of two builds of the CPU addon side by side in one process: this checkout's
 * (A) and another checkout's (B, --base, built there), loaded together and called alternately (A, B,
 * A, B, ...) on the same inputs, so that a shared machine's load falls on both; medians of --reps
 * calls each, and whether A's outputs equal B's bit for bit. The ops: stage-1 attention forward and
 * backward at --length tokens, width --dim, 8 heads, dropout 0.1 (as a RAB trains), and the GEMMs
 * that attention and the classifier issue at those sizes.
 *
 *   node -r ts-node/register/transpile-only benchmarks/ops_ab.ts --base ../other-checkout
 *     [--length 330] [--dim 256] [--reps 300] [--threads 1]
 */
import * as path from 'path';
import type { NativeAddon, NativeBuffer } from '../lib/runtime/native';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  if (def === undefined) throw new Error(`ops_ab: --${name} is required`);
  return def;
}

type Case = { name: string; flops: number; run: (X: NativeAddon, b: Record<string, NativeBuffer>) => void; inputs: Record<string, number>; outputs: string[] };

function main(): void {
  const load = (root: string): NativeAddon => require(path.join(path.resolve(root), 'build/Release/pstal.node')) as NativeAddon;
  const A = load(path.resolve(__dirname, '..'));
  const B = load(arg('base'));
  const L = Number(arg('length', '330')), D = Number(arg('dim', '256')), H = 8, reps = Number(arg('reps', '300'));
  for (const X of [A, B]) X.set_num_threads(Number(arg('threads', '1')));
  const dh = D / H;
  const cases: Case[] = [
    {
      name: `attention forward L=${L} D=${D} H=${H} p=0.1`, flops: 4 * L * L * D,
      inputs: { q: L * D, k: L * D, v: L * D, probs: H * L * L, out: L * D }, outputs: ['out', 'probs'],
      run: (X, b) => X.attention_forward(b.out, b.probs, b.q, b.k, b.v, L, L, D, H, 0.1, 7),
    },
    {
      name: `attention backward L=${L} D=${D} H=${H} p=0.1`, flops: 8 * L * L * D,
      inputs: { q: L * D, k: L * D, v: L * D, probs: H * L * L, g: L * D, dq: L * D, dk: L * D, dv: L * D }, outputs: ['dq', 'dk', 'dv'],
      // the probabilities (with their dropout marks) of one forward first
      run: (X, b) => X.attention_backward(b.dq, b.dk, b.dv, b.g, b.probs, b.q, b.k, b.v, L, L, D, H, 0.1, 7),
    },
  ];
  // [M, N, K, transA, transB]: one head's P V and its gradients (N = dh), Q K^T (K = dh), a classifier of 21 classes
  for (const [M, N, K, ta, tb] of [[L, dh, L, false, false], [L, dh, L, true, false], [L, L, dh, false, true], [L, 21, D, false, true]] as const)
    cases.push({
      name: `GEMM ${M}x${N}x${K} transA=${ta} transB=${tb}`, flops: 2 * M * N * K,
      inputs: { a: M * K, b: K * N, c: M * N }, outputs: ['c'],
      run: (X, b) => X.matmul_forward(b.c, b.a, b.b, 1, M, N, K, ta, tb, 0, 0, 0),
    });
  let seed = 1;
  const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 8388608 - 1);
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  console.log(`A = ${path.resolve(__dirname, '..')}, B = ${path.resolve(arg('base'))}; medians of ${reps} alternating calls`);
  for (const c of cases) {
    const data = Object.fromEntries(Object.entries(c.inputs).map(([k, n]) => [k, rnd(n)]));
    const bufs = (X: NativeAddon): Record<string, NativeBuffer> => Object.fromEntries(Object.entries(data).map(([k, d]) => [k, new X.NativeBuffer(d)]));
    const [ba, bb] = [bufs(A), bufs(B)];
    if (c.name.startsWith('attention backward'))
      for (const [X, b] of [[A, ba], [B, bb]] as const) X.attention_forward(new X.NativeBuffer(L * D), b.probs, b.q, b.k, b.v, L, L, D, H, 0.1, 7);
    const ta: number[] = [], tb: number[] = [];
    for (let i = 0; i < reps + 10; i++)
      for (const [X, b, acc] of [[A, ba, ta], [B, bb, tb]] as const) {
        const t0 = process.hrtime.bigint();
        c.run(X, b);
        if (i >= 10) acc.push(Number(process.hrtime.bigint() - t0) / 1e3);
      }
    const same = c.outputs.every((k) => Buffer.from(ba[k].read().buffer).equals(Buffer.from(bb[k].read().buffer)));
    const [ma, mb] = [median(ta), median(tb)];
    console.log(`${c.name.padEnd(44)} A ${ma.toFixed(0).padStart(6)} us (${(c.flops / ma / 1e3).toFixed(1)} GFLOP/s)  B ${mb.toFixed(0).padStart(6)} us  A takes ${(100 * (1 - ma / mb)).toFixed(1).padStart(5)} % less time  ${same ? 'same bits' : 'BITS DIFFER'}`);
  }
}

main();
