/**
 * profile-stage1.ts: where a stage-1 training iteration's time goes, per native op, on either
 * device: the run benchmarks/stage1.ts times (benchmarks/stage1_run.ts: the real THUMOS14
 * annotations with synthetic features at --dim, a random prototype memory, batches in split order),
 * --iterations iterations of 16 videos timed three ways:
 *   plain     the iteration as the bench times it (one synchronize at the end)
 *   per op    every native op call timed alone; on cuda each one is followed
 *             by a synchronize, so a kernel's time lands on the op that queued it. The sum over
 *             ops against the iteration's wall time leaves the host's own share (JavaScript,
 *             autograd bookkeeping, seed selection).
 *   tf32      (cuda only) the plain iteration with TF32 GEMMs, for the share of fp32 GEMM.
 * and counted: the addon's launch counter (callCounts) over each plain iteration, native calls per
 * op (and on cuda the kernel launches), the total and the most frequent ops.
 *
 *   node -r ts-node/register/transpile-only scripts/profile-stage1.ts [--device cuda] [--dim 2048]
 *     [--iterations 3] [--top 25] [--data DIR] [--threads N]
 * --data DIR uses (or synthesizes into, and keeps) that folder, e.g. for the reference's profile
 * (scripts/bench-reference-stage1.py --profile) on the same files.
 * PSTAL_THUMOS14 points at the annotations (default ../shared/data/THUMOS14).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadStage1RunData, newStage1Run, splitOrderBatch, synthesizeStage1Set } from '../benchmarks/stage1_run';
import { backend, callCounts, checkDevice, resetCallCounts, setTf32 } from '../lib/runtime/backend';
import { setNumThreads } from '../lib/runtime/native';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

type Fn = (...a: unknown[]) => unknown;
interface Acc {
  n: number;
  ns: bigint;
}

/**
 * Wraps every op of the addon with a timer; returns the undo. NativeBuffer's methods (read, write,
 * fill: Node-API defines them non-writable, non-configurable) cannot be wrapped and count as host time.
 */
function instrument(addon: Record<string, unknown>, sync: () => void, acc: Map<string, Acc>): () => void {
  const undo: (() => void)[] = [];
  for (const [k, v] of Object.entries(addon)) {
    if (typeof v !== 'function' || /^[A-Z]/.test(k) || k === 'synchronize') continue;
    const f = v as Fn;
    addon[k] = function (this: unknown, ...a: unknown[]) {
      const t0 = process.hrtime.bigint();
      const r = f.apply(this, a);
      sync();
      const e = acc.get(k) ?? { n: 0, ns: 0n };
      e.n++;
      e.ns += process.hrtime.bigint() - t0;
      acc.set(k, e);
      return r;
    };
    undo.push(() => (addon[k] = f));
  }
  return () => undo.forEach((u) => u());
}

async function main(): Promise<void> {
  const device = checkDevice(arg('device', 'cpu'));
  const D = Number(arg('dim', '2048'));
  const iterations = Number(arg('iterations', '3'));
  const top = Number(arg('top', '25'));
  if (process.argv.includes('--threads')) setNumThreads(Number(arg('threads', '1'))); // host threads (CPU ops, post-processing)
  const keep = arg('data', '');
  const dir = keep || fs.mkdtempSync(path.join(os.tmpdir(), `pstal-profile-${D}-`));
  try {
    await synthesizeStage1Set(dir, D);
    const data = loadStage1RunData(dir, D);
    const addon = backend(device) as unknown as Record<string, unknown>;
    const sync = device === 'cuda' ? (addon.synchronize as () => void) : () => {};
    const run = newStage1Run(data, device);
    // Every way of timing runs the same batches (1 .. iterations; 0 is the warm-up), so that their
    // times compare: videos differ in length, and so do iterations.
    const iterate = (i: number): number => {
      const t0 = process.hrtime.bigint();
      run.step(i);
      sync();
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const snippets = (i: number): number => splitOrderBatch(data, i).reduce((a, v) => a + v.T, 0);
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    iterate(0); // warm-up: caches, cuBLAS handles, allocator
    const plain: number[] = [];
    const T: number[] = [];
    const counted: ReturnType<typeof callCounts>[] = [];
    for (let i = 1; i <= iterations; i++) {
      T.push(snippets(i));
      resetCallCounts(device);
      plain.push(iterate(i));
      counted.push(callCounts(device));
    }
    console.log(`device ${device}, D = ${D}: plain iteration ${plain.map((x) => x.toFixed(1)).join(', ')} ms (median ${median(plain).toFixed(1)}), snippets per iteration ${T.join(', ')}`);
    const topOf = (m: Record<string, number>): string =>
      Object.entries(m).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, n]) => `${k} ${n}`).join(', ');
    counted.forEach((c, i) => {
      console.log(`counted, iteration ${i + 1}: ${c.totalCalls} native calls (${topOf(c.calls)})`);
      if (device === 'cuda') console.log(`  ${c.totalLaunches} kernel launches (${topOf(c.launches)})`);
    });
    if (device === 'cuda') {
      setTf32(true);
      const tf: number[] = [];
      for (let i = 1; i <= iterations; i++) tf.push(iterate(i));
      setTf32(false);
      console.log(`tf32 iteration ${tf.map((x) => x.toFixed(1)).join(', ')} ms (median ${median(tf).toFixed(1)})`);
    }
    const acc = new Map<string, Acc>();
    const undo = instrument(addon, sync, acc);
    let wall = 0;
    for (let i = 1; i <= iterations; i++) wall += iterate(i);
    undo();
    const rows = [...acc.entries()].sort((a, b) => Number(b[1].ns - a[1].ns));
    const inOps = rows.reduce((s, [, e]) => s + Number(e.ns), 0) / 1e6;
    const calls = rows.reduce((s, [, e]) => s + e.n, 0);
    console.log(`per op: iteration ${(wall / iterations).toFixed(1)} ms, in native calls ${(inOps / iterations).toFixed(1)} ms, ` +
      `host outside them ${((wall - inOps) / iterations).toFixed(1)} ms, ${(calls / iterations).toFixed(0)} calls per iteration`);
    for (const [k, e] of rows.slice(0, top))
      console.log(`  ${k.padEnd(30)} ${(Number(e.ns) / 1e6 / iterations).toFixed(2).padStart(9)} ms ${String(Math.round(e.n / iterations)).padStart(7)} calls ` +
        `${(Number(e.ns) / 1e3 / e.n).toFixed(1).padStart(9)} us/call`);
    run.dispose();
  } finally {
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
