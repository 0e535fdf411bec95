/**
 * stage1_ab.ts: the stage-1 training step of two checkouts side by side, on the CPU: this checkout
 * (A) and another (B, --base, with its own build of the addon), each in one long-lived child process
 * on the same synthesized data (benchmarks/stage1_run.ts of each side: the real THUMOS14
 * annotations, features at --dim, batches of 16 in split order). After a warm-up iteration 0 on
 * each, the two take turns step by step: A runs iteration i, then B runs iteration i, and so on over
 * iterations 1 .. --iterations, --rounds times. A pair is timed seconds apart on the same core, so a
 * shared machine's slow spells fall on both sides of it; the verdict is the median over pairs of
 * A's time / B's time (each round's sums are printed too).
 *
 *   node -r ts-node/register/transpile-only benchmarks/stage1_ab.ts --base ../other-checkout
 *     [--dim 256] [--rounds 5] [--iterations 2] [--threads 1] [--cpu N (taskset -c N)]
 *     [--env-a NAME=VALUE,...] [--env-b NAME=VALUE,...]
 * --env-a / --env-b set variables for one side only: `--base .` with `--env-a PSTAL_GEMM_MC=240`
 * compares a setting against the default within one checkout.
 * PSTAL_THUMOS14 points at the annotations (default ../shared/data/THUMOS14).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  if (def === undefined) throw new Error(`stage1_ab: --${name} is required`);
  return def;
}

// What each child runs, from its own checkout (its stage1_run.ts, its lib, its addon): set up, warm
// up, print "ready", then one line of milliseconds for each "step i" read from stdin.
const CHILD = `
const { loadStage1RunData, newStage1Run, synthesizeStage1Set } = require(process.cwd() + '/benchmarks/stage1_run');
(async () => {
  const [dir, D] = [process.env.AB_DIR, Number(process.env.AB_DIM)];
  await synthesizeStage1Set(dir, D);
  const run = newStage1Run(loadStage1RunData(dir, D), 'cpu');
  run.step(0);
  console.log('ready');
  for await (const line of require('readline').createInterface({ input: process.stdin })) {
    const i = Number(line.split(' ')[1]);
    const t0 = process.hrtime.bigint();
    run.step(i);
    console.log(String(Number(process.hrtime.bigint() - t0) / 1e6));
  }
  run.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** A child and a way to ask it for one line. */
function start(root: string, env: NodeJS.ProcessEnv, cpuCore?: string): { child: ChildProcess; next: () => Promise<string> } {
  const cmd = [process.execPath, '-r', 'ts-node/register/transpile-only', '-e', CHILD];
  const child = cpuCore ? spawn('taskset', ['-c', cpuCore, ...cmd], { cwd: root, env, stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(cmd[0], cmd.slice(1), { cwd: root, env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new Error(`stage1_ab: the child in ${root} ended (exit code ${child.exitCode})`);
    return r.value;
  };
  return { child, next };
}

async function main(): Promise<void> {
  const A = path.resolve(__dirname, '..');
  const B = path.resolve(arg('base'));
  const D = Number(arg('dim', '256'));
  const rounds = Number(arg('rounds', '5'));
  const iterations = Number(arg('iterations', '2'));
  const threads = arg('threads', '1');
  const cpuCore = process.argv.includes('--cpu') ? arg('cpu') : undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pstal-ab-${D}-`));
  const env = { ...process.env, AB_DIR: dir, AB_DIM: String(D), PSTAL_NUM_THREADS: threads };
  const sides: { child: ChildProcess; next: () => Promise<string> }[] = [];
  try {
    const sideEnv = (name: string): NodeJS.ProcessEnv => {
      const extra: NodeJS.ProcessEnv = {};
      for (const kv of arg(name, '').split(',').filter((x) => x)) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new Error(`stage1_ab: --${name} takes NAME=VALUE[,NAME=VALUE...], received "${kv}"`);
        extra[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      return { ...env, ...extra };
    };
    for (const [root, name] of [[A, 'env-a'], [B, 'env-b']]) {
      const s = start(root, sideEnv(name), cpuCore);
      sides.push(s);
      if ((await s.next()) !== 'ready') throw new Error(`stage1_ab: the child in ${root} did not start`);
    }
    const step = async (s: (typeof sides)[number], i: number): Promise<number> => {
      s.child.stdin!.write(`step ${i}\n`);
      return Number(await s.next());
    };
    const ratios: number[] = [];
    const sums: [number, number][] = [];
    for (let r = 0; r < rounds; r++) {
      let [sa, sb] = [0, 0];
      for (let i = 1; i <= iterations; i++) {
        const a = await step(sides[0], i);
        const b = await step(sides[1], i);
        ratios.push(a / b);
        sa += a;
        sb += b;
      }
      sums.push([sa / iterations, sb / iterations]);
      console.log(`round ${r + 1}: A ${(sa / iterations).toFixed(1)} ms, B ${(sb / iterations).toFixed(1)} ms per iteration`);
    }
    const median = (xs: number[]): number => {
      const s = [...xs].sort((x, y) => x - y);
      return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    };
    const [ma, mb, mr] = [median(sums.map((s) => s[0])), median(sums.map((s) => s[1])), median(ratios)];
    console.log(`D = ${D}, ${threads} thread(s), ${rounds} rounds of ${iterations} iterations: median A ${ma.toFixed(1)} ms, B ${mb.toFixed(1)} ms per iteration; median over ${ratios.length} pairs of A / B ${mr.toFixed(3)}: A takes ${(100 * (1 - mr)).toFixed(1)} % less time than B`);
  } finally {
    for (const s of sides) s.child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
