/**
 * stage1.ts: HR-Pro stage-1 training iterations and test passes at THUMOS14 scale: the real
 * THUMOS14 annotations (../shared/data/THUMOS14, or PSTAL_THUMOS14) with synthetic features at
 * D = 2048 and D = 256, side by side in the same run with the PyTorch reference's own S_train and
 * S_test on the same files (scripts/bench-reference-stage1.py; needs python3 with torch, scipy,
 * pandas, joblib, and a clone or mirror of pipixin321/HR-Pro in PSTAL_HRPRO_REFERENCE, or
 * PSTAL_REFERENCE). Without them only our figures are reported. One iteration = 16 training videos
 * in split order, as both sides use.
 *
 * Rows for each thread count (--threads 1,2: ours with setNumThreads, the reference with
 * torch.set_num_threads), and with --precision fp32,bf16 a bf16 row of ours (D = 2048 only, unless
 * --dims says otherwise; skipped, saying why, on a CPU without AVX512-BF16). The reference's Python
 * is PSTAL_PYTHON, or DIR/bin/python of --torch-venv DIR, which is created when missing
 * (benchmarks/torch_venv.ts: PyTorch 2.13 CPU and the reference's scipy/pandas/joblib).
 * --iterations N and --test-videos N shrink a run to check the harness. Our rows are all measured
 * before any reference process runs (see benchStage1).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { BenchPrecision, BenchResult, SuiteOptions } from './harness';
import { testStage1 } from '../lib/models/hrpro/evaluate';
import { bf16Supported, getNumThreads, setGemmPrecision, setNumThreads } from '../lib/runtime/native';
import { cudaSynchronize, Device, setTf32 } from '../lib/runtime/backend';
import { ensureTorchVenv } from './torch_venv';
import { loadStage1RunData, newStage1Run, synthesizeStage1Set } from './stage1_run';

const REFERENCE = process.env.PSTAL_HRPRO_REFERENCE || process.env.PSTAL_REFERENCE;

interface ReferenceTiming {
  train_iteration_s: number[];
  test_pass_s?: number;
  threads: number;
  torch?: string;
  /** the GPU's name, or 'cpu' */
  device?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function runReference(python: string, dir: string, D: number, iterations: number, threads: number, testVideos: number | undefined, device: Device): ReferenceTiming | null {
  if (!REFERENCE || !fs.existsSync(REFERENCE)) {
    console.error(`bench stage1: ${REFERENCE ? `no reference at ${REFERENCE}` : 'no reference given'} (set PSTAL_HRPRO_REFERENCE to a clone of pipixin321/HR-Pro); reporting ours only`);
    return null;
  }
  const args = [path.join(__dirname, '..', 'scripts', 'bench-reference-stage1.py'), '--data', dir, '--reference', REFERENCE,
    '--iterations', String(iterations), '--threads', String(threads)];
  if (testVideos) args.push('--test-videos', String(testVideos));
  if (device !== 'cpu') args.push('--device', device); // the reference on the same GPU as ours
  console.error(`bench stage1: the reference at D=${D}, ${threads} thread(s): ${iterations + 1} iterations and a test pass...`);
  const t0 = Date.now();
  const r = spawnSync(python, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  console.error(`bench stage1: the reference done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (r.status !== 0) {
    console.error(`bench stage1: the PyTorch reference did not run (${(r.stderr || r.error?.message || '').trim().split('\n').pop()}); reporting ours only`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ReferenceTiming;
}

/** "PyTorch 2.13.0+cpu 2 threads", or "PyTorch 2.11.0+cu130 on NVIDIA H200" for a GPU run. */
function referenceName(r: ReferenceTiming): string {
  const where = r.device && r.device !== 'cpu' ? `on ${r.device}` : `${r.threads} threads`;
  return `PyTorch ${r.torch ?? ''} ${where}`.replace('  ', ' ');
}

export async function benchStage1(opts: SuiteOptions): Promise<BenchResult[]> {
  const device: Device = opts.device ?? 'cpu';
  const sync = (): void => cudaSynchronize(); // GPU work is queued: wait for it before reading the clock
  const python = opts.torchVenv ? ensureTorchVenv(opts.torchVenv) : process.env.PSTAL_PYTHON ?? '/usr/bin/python3';
  const threadCounts = opts.threads ?? [getNumThreads()];
  const precisions: BenchPrecision[] = opts.precision ?? ['fp32'];
  const dims = opts.dims ?? (opts.quick ? [256] : [2048, 256]);
  const savedThreads = getNumThreads();
  const rows: BenchResult[] = [];
  // Ours for every size and thread count first, then the reference's: our rows measured after a
  // reference process had run came out up to 2x slower in the same process (D = 256, 2 threads:
  // 1.08 s against 0.57 s without the reference; D = 2048: 33 s against 25 s). Plausibly V8's
  // collections, which every native buffer triggered and whose cost grew with the process's heap
  // (commit 4141896, 2026-11-29; README "Benchmarks"); ours still come first, so that no row of
  // ours follows a reference process. The synthesized sets are kept until the reference has run on them.
  interface Ours { threads: number; precision: BenchPrecision; train: number; test: number; evaluated: boolean }
  const sets: { D: number; dir: string; iterations: number; testCount: number; ours: Ours[] }[] = [];
  try {
    for (const D of dims) {
      const iterations = opts.iterations ?? (D >= 1024 ? 3 : 5);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pstal-bench-stage1-${D}-`));
      const set = { D, dir, iterations, testCount: 0, ours: [] as Ours[] };
      sets.push(set);
      await synthesizeStage1Set(dir, D);
      const data = loadStage1RunData(dir, D);
      const { ds, cfg, config } = data;
      const testVideos = opts.testVideos ? ds.test.slice(0, opts.testVideos) : ds.test;
      set.testCount = testVideos.length;
      for (const threads of threadCounts) {
        setNumThreads(threads);
        for (const precision of precisions) {
          if (precision === 'bf16') {
            if (!opts.dims && D < 1024) continue; // the bf16 rows are D = 2048's unless --dims asks
            if (device !== 'cpu' || !bf16Supported()) {
              console.error(`bench stage1: no bf16 row at D=${D}: ${device !== 'cpu' ? 'bf16 is the CPU backend\'s' : 'this CPU has no AVX512-BF16'}`);
              continue;
            }
          }
          if (precision === 'tf32' && device !== 'cuda') {
            console.error(`bench stage1: no tf32 row at D=${D}: TF32 is the CUDA backend's (tensor cores)`);
            continue;
          }
          if (precision === 'tf32') setTf32(true);
          else setGemmPrecision(precision);
          try {
            const run = newStage1Run(data, device);
            const times: number[] = [];
            for (let i = 0; i < iterations + 1; i++) {
              const t0 = process.hrtime.bigint();
              run.step(i);
              sync();
              if (i > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
            }
            const t0 = process.hrtime.bigint();
            const pass = testStage1(run.model, testVideos, ds.classNames, cfg, { ambiguous: ds.ambiguous, blockedVideos: config.blockedVideos });
            sync();
            const testSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
            run.dispose();
            set.ours.push({ threads, precision, train: median(times), test: testSeconds, evaluated: pass.evaluation !== null });
            // a line per row as it is measured: the whole suite runs for a quarter of an hour and more
            console.error(`bench stage1: ours, D=${D}, ${threads} thread(s), ${precision}: training ${median(times).toFixed(3)} s/it, test pass ${testSeconds.toFixed(2)} s`);
          } finally {
            if (precision === 'tf32') setTf32(false);
            else setGemmPrecision('fp32');
          }
        }
      }
    }
    for (const set of sets) {
      // the reference once per thread count, beside the fp32 rows (it has no bf16 path)
      const refs = new Map<number, ReferenceTiming | null>();
      if (precisions.some((p) => p !== 'bf16')) for (const threads of threadCounts) refs.set(threads, runReference(python, set.dir, set.D, set.iterations, threads, opts.testVideos, device));
      for (const o of set.ours) {
        // On cuda the reference runs with PyTorch's defaults (cuDNN's convolutions in TF32, matmuls in
        // fp32): it stands beside our fp32 and our tf32 rows alike.
        const base = o.precision !== 'bf16' ? refs.get(o.threads) ?? null : null;
        const label = `D=${set.D}, ${device}${device === 'cpu' ? `, ${o.threads} thread${o.threads > 1 ? 's' : ''}, ${o.precision}` : o.precision === 'fp32' ? '' : `, ${o.precision}`}`;
        rows.push({
          name: `stage-1 training iteration (16 THUMOS14 videos, ${label}), s/it (lower is better)`,
          value: o.train,
          unit: 's/it',
          ...(base && { baseline: median(base.train_iteration_s), baselineName: referenceName(base) }),
        });
        rows.push({
          name: `stage-1 test pass (${set.testCount} videos: inference, proposals, soft-NMS, mAP; ${o.evaluated ? 'evaluated' : ''}), ${label}`,
          value: o.test,
          unit: 's',
          ...(base?.test_pass_s !== undefined && { baseline: base.test_pass_s, baselineName: referenceName(base) }),
        });
      }
    }
  } finally {
    setNumThreads(savedThreads);
    for (const set of sets) fs.rmSync(set.dir, { recursive: true, force: true });
  }
  return rows;
}
