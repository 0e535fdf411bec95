/**
 * harness.ts: timing helpers shared by every benchmark: warm-up, repeated runs, the median, and
 * the machine description that goes beside every figure.
 */
import * as os from 'os';
import { cpu } from '../lib/runtime/native';

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
