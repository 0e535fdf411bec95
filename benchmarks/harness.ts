/**
 * harness.ts: timing helpers shared by every benchmark: warm-up, repeated runs, the median, and
 * the machine description that goes beside every figure.
 */
import * as os from 'os';
import { cpu, GemmPrecision } from '../lib/runtime/native';
import type { Device } from '../lib/runtime/backend';

/** The CPU's GEMM precisions, and TF32 tensor-core GEMMs on cuda. */
export type BenchPrecision = GemmPrecision | 'tf32';

/** What `npm run bench` passes every suite (each reads what applies to it). */
export interface SuiteOptions {
  quick?: boolean;
  device?: Device;
  /** --threads 1,2: a row per thread count (stage1) */
  threads?: number[];
  /** --precision fp32,bf16,tf32: GEMM precisions (stage1: bf16 rows at D = 2048 on the CPU, tf32 rows on cuda) */
  precision?: BenchPrecision[];
  /** --dims 256: feature widths (stage1) */
  dims?: number[];
  /** --iterations N: timed training iterations (stage1), for a quick check of the harness */
  iterations?: number;
  /** --test-videos N: the first N test videos only (stage1) */
  testVideos?: number;
  /** --torch-venv DIR: the reference's Python, a venv with PyTorch 2.13 CPU made when missing */
  torchVenv?: string;
}

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** optional: the comparison figure measured in the same run */
  baseline?: number;
  baselineName?: string;
}

/** Median seconds of fn over `reps` runs after `warmup` runs. */
export function timeIt(fn: () => void, reps = 7, warmup = 2): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

export function machine(): Record<string, string | number> {
  const info = cpu().gemm_info();
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    threads: info.threads,
    gemmKernel: info.kernel,
    node: process.version,
    date: new Date().toISOString(),
  };
}
