/**
 * killrun.ts: the kill -9 harness of test/e2e/kill.test.ts (CI size) and test/soak/kill-soak.ts (long).
 *
 * A real `pstal run` on a tiny synthetic dataset is started, SIGKILLed after a random delay, checked
 * (every file of the run folder must read: JSON, JSONL, safetensors; a lock or temporary file may be
 * left), and `--resume`d, again and again; when a run completes, its metrics (without wall times),
 * best checkpoints, results and proposals must equal, byte for byte, those of an uninterrupted run
 * with the same seed, and a fresh run folder starts the next cycle. Delays are drawn from a seeded
 * generator over the whole length of a run, so kills land in stage 1, the ranking, stage 2 and the
 * checkpoint writes (counted by what the process last printed and by the temporary files left).
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadSafetensors } from '../../lib/io/safetensors';
import { Rng } from '../../lib/util/rng';

export const BIN = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');

export interface KillRunOptions {
  /** scratch folder (created) */
  root: string;
  /** number of SIGKILLs */
  kills: number;
  seed?: number;
  /** extra `pstal run` options (the defaults make a run of a few seconds) */
  runArgs?: string[];
  log?: (s: string) => void;
  /** stop early after this many seconds (the kills done so far are reported) */
  maxSeconds?: number;
}

export interface KillRunReport {
  kills: number;
  /** kills by the phase the process was in (its last progress line) */
  phases: Record<string, number>;
  /** kills that left a temporary file (a write cut short) */
  duringWrites: number;
  /** completed cycles, each compared with the uninterrupted run */
  completedCycles: number;
  /** resumes that found a fresh folder to continue */
  resumes: number;
  mismatches: string[];
  unreadable: string[];
  staleTempsAfterResume: string[];
  fullRunSeconds: number;
  seconds: number;
}

export const DEFAULT_RUN_ARGS = ['--config', 'thumos14', '--iterations', '12', '--test-every', '4', '--batch-size', '2', '--epochs', '3', '--batch-size2', '2', '--checkpoint-every', '1', '--seed', '3'];

const ROOT = path.resolve(__dirname, '..', '..');
const COMPILED = path.join(ROOT, 'dist', 'lib', 'cli', 'index.js');

function newestSource(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestSource(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

/**
 * The compiled CLI (dist/, what an installed package runs) is brought up to date with lib/ once:
 * a process then starts in a fraction of a second instead of seconds through ts-node, so the kills
 * land in the work rather than in module loading.
 */
export function ensureCompiled(): void {
  const fresh = (): boolean => fs.existsSync(COMPILED) && fs.statSync(COMPILED).mtimeMs >= newestSource(path.join(ROOT, 'lib'));
  if (fresh()) return;
  // test files run in parallel processes: one compiles, the others wait for it
  const lock = path.join(ROOT, '.dist-compile.lock');
  const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  for (let waited = 0; ; waited += 200) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (waited > 300000 || Date.now() - fs.statSync(lock).mtimeMs > 300000) fs.rmSync(lock, { recursive: true, force: true });
      else sleep(200);
    }
  }
  try {
    if (fresh()) return;
    const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { encoding: 'utf8', cwd: ROOT });
    if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
    fs.utimesSync(COMPILED, new Date(), new Date());
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, PSTAL_NUM_THREADS: process.env.PSTAL_NUM_THREADS ?? '1', PSTAL_COMPILED: '1' };
  delete e.PSTAL_TS;
  return e;
};

/** The tiny dataset: 12 invented videos of D = 16 (a run of a few seconds). */
export function makeData(dir: string, seed = 0): void {
  const r = spawnSync(process.execPath, [BIN, 'synth', '--out', dir, '--videos', '12', '--dim', '16', '--duration-scale', '0.2', '--seed', String(seed), '--quiet'], { encoding: 'utf8', env: env() });
  if (r.status !== 0) throw new Error(`pstal synth failed: ${r.stderr}`);
}

/** Every file of a run folder reads (temporary files and the lock aside); returns the problems. */
export function checkReadable(dir: string): string[] {
  const bad: string[] = [];
  if (!fs.existsSync(dir)) return bad;
  for (const name of fs.readdirSync(dir)) {
    if (name.endsWith('.tmp') || name === '.pstal.lock') continue;
    const file = path.join(dir, name);
    try {
      if (name.endsWith('.json')) JSON.parse(fs.readFileSync(file, 'utf8'));
      else if (name.endsWith('.jsonl')) fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).forEach((l) => JSON.parse(l));
      else if (name.endsWith('.safetensors')) loadSafetensors(file);
      else if (name.endsWith('.svg') && !fs.readFileSync(file, 'utf8').trimEnd().endsWith('</svg>')) throw new Error('cut short');
    } catch (e) {
      bad.push(`${file}: ${(e as Error).message.slice(0, 200)}`);
    }
  }
  return bad;
}

const COMPARED = ['stage1_best.safetensors', 'stage2_best.safetensors', 'stage1_results.json', 'stage2_results.json', 'proposals.json', 'config.json', 'stage2_config.json'];

function metricsWithoutTimes(file: string): string {
  if (!fs.existsSync(file)) return '<missing>';
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const { elapsed: _e, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return JSON.stringify(rest);
    })
    .join('\n');
}

/** Differences between a completed run folder and the reference (empty: identical). */
export function compareRuns(ref: string, run: string): string[] {
  const out: string[] = [];
  for (const f of COMPARED) {
    const a = path.join(ref, f);
    const b = path.join(run, f);
    if (!fs.existsSync(a) || !fs.existsSync(b)) {
      if (fs.existsSync(a) !== fs.existsSync(b)) out.push(`${f}: present in one folder only`);
      continue;
    }
    if (!fs.readFileSync(a).equals(fs.readFileSync(b))) out.push(`${run}/${f} differs from ${ref}/${f}`);
  }
  for (const f of ['stage1_metrics.jsonl', 'stage2_metrics.jsonl'])
    if (metricsWithoutTimes(path.join(ref, f)) !== metricsWithoutTimes(path.join(run, f))) out.push(`${run}/${f} differs from the uninterrupted run's (wall times aside)`);
  return out;
}

interface Outcome {
  /** seconds until the process first wrote to stderr (the end of its start-up) */
  firstOutput: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  seconds: number;
}

/** Starts `pstal run`; kills it with SIGKILL after `killAfter` seconds unless it ended before. */
function runOnce(data: string, out: string, args: string[], resume: boolean, killAfter: number | null): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, 'run', '--data', data, '--out', out, '--quiet', ...args, ...(resume ? ['--resume'] : [])], { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let firstOutput = -1;
    p.stderr.on('data', (d) => {
      if (firstOutput < 0) firstOutput = (Date.now() - t0) / 1000;
      stderr += d;
    });
    const timer = killAfter === null ? null : setTimeout(() => p.kill('SIGKILL'), Math.round(killAfter * 1000));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stderr, seconds: (Date.now() - t0) / 1000, firstOutput });
    });
  });
}

/** Whether the run folder's stage-1 state is at its last iteration (the ranking comes next). */
function stage1Done(out: string): boolean {
  try {
    const f = loadSafetensors(path.join(out, 'stage1_last.safetensors'));
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { stage1: { iterations: number } };
    return (JSON.parse(f.metadata.state) as { step: number }).step >= cfg.stage1.iterations;
  } catch {
    return false;
  }
}

/** The phase a killed process was in: its last progress line. */
function phaseOf(stderr: string): string {
  const i1 = stderr.lastIndexOf('stage 1:');
  const ir = stderr.lastIndexOf('ranking:');
  const i2 = stderr.lastIndexOf('stage 2:');
  const last = Math.max(i1, ir, i2);
  if (last < 0) return 'start-up';
  if (last === i2) return /stage 2: best checkpoint/.test(stderr.slice(i2)) ? 'final evaluation' : 'stage 2';
  if (last === ir) return 'ranking done';
  return /stage 1: best checkpoint/.test(stderr.slice(i1)) ? 'ranking' : 'stage 1';
}

export async function killAndResume(o: KillRunOptions): Promise<KillRunReport> {
  const t0 = Date.now();
  const log = o.log ?? (() => undefined);
  const rng = new Rng(o.seed ?? 1);
  const args = o.runArgs ?? DEFAULT_RUN_ARGS;
  fs.mkdirSync(o.root, { recursive: true });
  ensureCompiled();
  const data = path.join(o.root, 'data');
  if (!fs.existsSync(path.join(data, 'gt_full.json'))) makeData(data);
  const ref = path.join(o.root, 'reference');
  fs.rmSync(ref, { recursive: true, force: true });
  const full = await runOnce(data, ref, args, false, null);
  if (full.code !== 0) throw new Error(`the uninterrupted run failed (exit ${full.code}): ${full.stderr.slice(-2000)}`);
  const report: KillRunReport = {
    kills: 0, phases: {}, duringWrites: 0, completedCycles: 0, resumes: 0, mismatches: [], unreadable: [], staleTempsAfterResume: [],
    fullRunSeconds: full.seconds, seconds: 0,
  };
  log(`uninterrupted run: ${full.seconds.toFixed(1)} s (start-up ${full.firstOutput.toFixed(1)} s)`);
  let cycle = 0;
  let scale = 1;
  let out = path.join(o.root, `cut-${cycle}`);
  fs.rmSync(out, { recursive: true, force: true });
  const finishCycle = (): void => {
    report.completedCycles++;
    report.mismatches.push(...compareRuns(ref, out));
    report.unreadable.push(...checkReadable(out));
    fs.rmSync(out, { recursive: true, force: true });
    cycle++;
    out = path.join(o.root, `cut-${cycle}`);
    fs.rmSync(out, { recursive: true, force: true });
  };
  while (report.kills < o.kills) {
    if (o.maxSeconds && (Date.now() - t0) / 1000 > o.maxSeconds) break;
    const resume = fs.existsSync(out);
    if (resume) report.resumes++;
    // from shortly before the end of the start-up (loading the modules) to the end of a whole run; the
    // run's length is re-estimated as the machine's load changes (runs that end before their kill
    // shrink it, kills grow it), so that most attempts are kills
    const startUp = Math.max(0.1, 0.8 * full.firstOutput);
    const delay = startUp + rng.uniform() * Math.max(0.05, scale * full.seconds - startUp);
    const r = await runOnce(data, out, args, resume, delay);
    if (r.signal === 'SIGKILL') {
      scale = Math.min(1.5, scale * 1.03);
      report.kills++;
      if (report.kills % 20 === 0) log(`${report.kills} kills, ${report.completedCycles} completed runs, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      let phase = phaseOf(r.stderr);
      if (phase === 'stage 1' && stage1Done(out) && !fs.existsSync(path.join(out, 'proposals.json'))) phase = 'ranking';
      report.phases[phase] = (report.phases[phase] ?? 0) + 1;
      const temps = fs.existsSync(out) ? fs.readdirSync(out).filter((n) => n.endsWith('.tmp')) : [];
      if (temps.length) report.duringWrites++;
      report.unreadable.push(...checkReadable(out));
      continue;
    }
    if (r.code !== 0) {
      report.mismatches.push(`cycle ${cycle}: pstal run --resume exited ${r.code}: ${r.stderr.slice(-1500)}`);
      break;
    }
    scale = Math.max(0.05, scale * 0.85);
    const left = fs.readdirSync(out).filter((n) => n.endsWith('.tmp'));
    report.staleTempsAfterResume.push(...left.map((n) => path.join(out, n)));
    finishCycle();
  }
  // the last cycle: resume until done, without kills
  if (fs.existsSync(out)) {
    report.resumes++;
    const r = await runOnce(data, out, args, true, null);
    if (r.code !== 0) report.mismatches.push(`final resume exited ${r.code}: ${r.stderr.slice(-1500)}`);
    else {
      report.staleTempsAfterResume.push(...fs.readdirSync(out).filter((n) => n.endsWith('.tmp')).map((n) => path.join(out, n)));
      finishCycle();
    }
  }
  report.seconds = (Date.now() - t0) / 1000;
  return report;
}
