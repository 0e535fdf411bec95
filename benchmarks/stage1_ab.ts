/**
 * stage1_ab.ts: the stage-1 training step of two checkouts side by side, on the CPU at one thread:
 * this checkout (A) and another (B, --base, with its own build of the addon), each run in its own
 * child process on the same synthesized data (benchmarks/stage1_run.ts of each side: the real
 * THUMOS14 annotations, features at --dim, batches of 16 in split order), alternating A, B, A, B
 * for --rounds rounds so that a shared machine's load falls on both; each round times iterations
 * 1 .. --iterations after a warm-up iteration 0. Prints each round and the medians.
 *
 *   node -r ts-node/register/transpile-only benchmarks/stage1_ab.ts --base ../other-checkout
 *     [--dim 256] [--rounds 5] [--iterations 2] [--threads 1] [--cpu N (taskset -c N)]
 * PSTAL_THUMOS14 points at the annotations (default ../shared/data/THUMOS14).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  if (def === undefined) throw new Error(`stage1_ab: --${name} is required`);
  return def;
}

// What each child runs, from its own checkout: its stage1_run.ts, its lib, its addon.
const CHILD = `
const { loadStage1RunData, newStage1Run, synthesizeStage1Set } = require(process.cwd() + '/benchmarks/stage1_run');
(async () => {
  const [dir, D, iterations] = [process.env.AB_DIR, Number(process.env.AB_DIM), Number(process.env.AB_ITERATIONS)];
  await synthesizeStage1Set(dir, D);
  const run = newStage1Run(loadStage1RunData(dir, D), 'cpu');
  run.step(0);
  const t0 = process.hrtime.bigint();
  for (let i = 1; i <= iterations; i++) run.step(i);
  console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6 / iterations }));
  run.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`;

function main(): void {
  const A = path.resolve(__dirname, '..');
  const B = path.resolve(arg('base'));
  const D = Number(arg('dim', '256'));
  const rounds = Number(arg('rounds', '5'));
  const iterations = Number(arg('iterations', '2'));
  const threads = arg('threads', '1');
  const cpuCore = process.argv.includes('--cpu') ? arg('cpu') : undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pstal-ab-${D}-`));
  const env = { ...process.env, AB_DIR: dir, AB_DIM: String(D), AB_ITERATIONS: String(iterations), PSTAL_NUM_THREADS: threads };
  const time = (root: string): number => {
    const cmd = [process.execPath, '-r', 'ts-node/register/transpile-only', '-e', CHILD];
    const out = cpuCore ? execFileSync('taskset', ['-c', cpuCore, ...cmd], { cwd: root, env, encoding: 'utf8' }) : execFileSync(cmd[0], cmd.slice(1), { cwd: root, env, encoding: 'utf8' });
    return (JSON.parse(out.trim().split('\n').pop()!) as { ms: number }).ms;
  };
  try {
    const a: number[] = [];
    const b: number[] = [];
    for (let r = 0; r < rounds; r++) {
      a.push(time(A));
      b.push(time(B));
      console.log(`round ${r + 1}: A ${a[r].toFixed(1)} ms, B ${b[r].toFixed(1)} ms per iteration`);
    }
    const median = (xs: number[]): number => {
      const s = [...xs].sort((x, y) => x - y);
      return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    };
    const [ma, mb] = [median(a), median(b)];
    console.log(`D = ${D}, ${threads} thread(s), ${rounds} rounds of ${iterations} iterations: median A ${ma.toFixed(1)} ms, B ${mb.toFixed(1)} ms; A takes ${(100 * (1 - ma / mb)).toFixed(1)} % less time than B`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
