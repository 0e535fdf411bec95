/**
 * `npm run bench [-- --only ops,eval --quick --device cuda --out FILE]`: runs every benchmark suite,
 * (stage1 also takes --threads 1,2 --precision fp32,bf16,tf32 --dims 256 --iterations N --test-videos N
 * --torch-venv DIR: benchmarks/stage1.ts),
 * prints one table and writes the results with the machine description as JSON (default
 * .bench/results.json). Suites live beside this file, one per area; each exports an async function
 * returning rows. `--device cuda` runs the suites that have a GPU path (DEVICE_SUITES) on the GPU.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BenchResult, SuiteOptions, machine } from './harness';
import { writeFileAtomic } from '../lib/util/fs';
import { checkDevice, cuda, cudaDeviceInfo, Device } from '../lib/runtime/backend';

type Suite = (options: SuiteOptions) => Promise<BenchResult[]>;

/** Suites with a `--device cuda` path. */
const DEVICE_SUITES = new Set(['ops', 'stage1']);

const SUITES: Record<string, () => Suite> = {
  ops: () => require('./ops').benchOps,
  postprocess: () => require('./postprocess').benchPostprocess,
  eval: () => require('./eval').benchEval,
  synth: () => require('./synth').benchSynth,
  stage1: () => require('./stage1').benchStage1,
  stage2: () => require('./stage2').benchStage2,
  tspnet: () => require('./tspnet').benchTspNet,
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const only = opt('only')?.split(',');
  const quick = argv.includes('--quick');
  const out = opt('out') ?? path.join('.bench', 'results.json');
  const device = checkDevice(opt('device') ?? 'cpu');
  const ints = (name: string): number[] | undefined => {
    const v = opt(name);
    if (v === undefined) return undefined;
    const xs = v.split(',').map(Number);
    if (!xs.every((x) => Number.isInteger(x) && x >= 1)) throw new Error(`bench: --${name} takes positive integers (comma-separated), received '${v}'`);
    return xs;
  };
  const precision = opt('precision')?.split(',');
  if (precision && !precision.every((p) => p === 'fp32' || p === 'bf16' || p === 'tf32'))
    throw new Error(`bench: --precision takes fp32, bf16 (CPU) and/or tf32 (cuda), received '${opt('precision')}'`);
  const suiteOptions: SuiteOptions = {
    quick,
    device,
    threads: ints('threads'),
    precision: precision as SuiteOptions['precision'],
    dims: ints('dims'),
    iterations: ints('iterations')?.[0],
    testVideos: ints('test-videos')?.[0],
    torchVenv: opt('torch-venv'),
  };
  if (device === 'cuda') {
    try {
      cuda();
    } catch (e) {
      console.error(`bench: --device cuda is not usable here: ${(e as Error).message}`);
      process.exitCode = 1;
      return;
    }
  }
  const rows: (BenchResult & { suite: string })[] = [];
  for (const [name, load] of Object.entries(SUITES)) {
    if (only && !only.includes(name)) continue;
    if (device !== 'cpu' && !DEVICE_SUITES.has(name)) {
      console.error(`bench: suite ${name} has no --device ${device} path; skipped`);
      continue;
    }
    let suite: Suite;
    try {
      suite = load();
    } catch (e) {
      console.error(`bench: suite ${name} unavailable: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    process.stderr.write(`bench: ${name}...\n`);
    for (const r of await suite(suiteOptions)) rows.push({ suite: name, ...r });
  }
  const fmt = (v: number | undefined): string => (v === undefined ? '' : v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toPrecision(3));
  console.log('| suite | benchmark | value | unit | baseline (same run) | ratio |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    const base = r.baseline !== undefined ? `${fmt(r.baseline)} (${r.baselineName})` : '';
    const ratio = r.baseline !== undefined ? (r.value / r.baseline).toFixed(2) : '';
    console.log(`| ${r.suite} | ${r.name} | ${fmt(r.value)} | ${r.unit} | ${base} | ${ratio} |`);
  }
  const m: Record<string, string | number> = { ...machine(), device };
  if (device === 'cuda') {
    const g = cudaDeviceInfo();
    m.gpu = `${g.name} (compute ${g.computeCapability}, ${(g.totalBytes / 2 ** 30).toFixed(0)} GiB)`;
  }
  console.log(`\nmachine: ${JSON.stringify(m)}`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeFileAtomic(out, JSON.stringify({ machine: m, command: `npm run bench -- ${argv.join(' ')}`.trim(), results: rows }, null, 2));
  console.log(`written: ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
