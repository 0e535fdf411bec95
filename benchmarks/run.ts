/**
 * `npm run bench [-- --only ops,eval --quick --out FILE]`: runs every benchmark suite, prints one
 * table and writes the results with the machine description as JSON (default .bench/results.json).
 * Suites live beside this file, one per area; each exports an async function returning rows.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BenchResult, machine } from './harness';
import { writeFileAtomic } from '../lib/util/fs';

type Suite = (options: { quick?: boolean }) => Promise<BenchResult[]>;

const SUITES: Record<string, () => Suite> = {
  ops: () => require('./ops').benchOps,
  postprocess: () => require('./postprocess').benchPostprocess,
  eval: () => require('./eval').benchEval,
  synth: () => require('./synth').benchSynth,
  stage1: () => require('./stage1').benchStage1,
  stage2: () => require('./stage2').benchStage2,
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
  const rows: (BenchResult & { suite: string })[] = [];
  for (const [name, load] of Object.entries(SUITES)) {
    if (only && !only.includes(name)) continue;
    let suite: Suite;
    try {
      suite = load();
    } catch (e) {
      console.error(`bench: suite ${name} unavailable: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    process.stderr.write(`bench: ${name}...\n`);
    for (const r of await suite({ quick })) rows.push({ suite: name, ...r });
  }
  const fmt = (v: number | undefined): string => (v === undefined ? '' : v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toPrecision(3));
  console.log('| suite | benchmark | value | unit | baseline (same run) | ratio |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    const base = r.baseline !== undefined ? `${fmt(r.baseline)} (${r.baselineName})` : '';
    const ratio = r.baseline !== undefined ? (r.value / r.baseline).toFixed(2) : '';
    console.log(`| ${r.suite} | ${r.name} | ${fmt(r.value)} | ${r.unit} | ${base} | ${ratio} |`);
  }
  const m = machine();
  console.log(`\nmachine: ${JSON.stringify(m)}`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeFileAtomic(out, JSON.stringify({ machine: m, command: `npm run bench -- ${argv.join(' ')}`.trim(), results: rows }, null, 2));
  console.log(`written: ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
