/**
 * long_video.ts: stage 1's scoring of one long video (the RABs' attention is quadratic in the
 * number of snippets T): time and peak resident memory for each T, each in a fresh process (so that
 * the peak is that video's), with random weights and features of width --dim (timing does not
 * depend on the values). Inference keeps no [H, T, T] probabilities: attention runs in blocks of
 * query rows in per-thread scratch (native/cpu/attention.cc), so memory grows with T, time with T^2.
 *
 *   node -r ts-node/register/transpile-only benchmarks/long_video.ts [--dim 2048]
 *     [--lengths 1000,5000,10000,20000,41800] [--threads N] [--out FILE.json]
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

// One length in this process: build the model, score a warm-up video of 64 snippets, then the long one.
function child(T: number, D: number): void {
  /* eslint-disable @typescript-eslint/no-var-requires */
  const { Stage1Model } = require('../lib/models/hrpro/stage1');
  const { STAGE1_TRAIN_DEFAULTS } = require('../lib/models/hrpro/config');
  const { scoreVideo } = require('../lib/models/hrpro/inference');
  const { Rng } = require('../lib/util/rng');
  const model = new Stage1Model({ ...STAGE1_TRAIN_DEFAULTS.model, featureDim: D, numClasses: 20, device: 'cpu' }, new Rng(0));
  const projections = model.composeProjections();
  const rng = new Rng(1);
  const features = (n: number): Float32Array => Float32Array.from({ length: n * D }, () => rng.uniform() * 2 - 1);
  scoreVideo(model, features(64), 64, projections);
  const x = features(T);
  const rssBefore = process.memoryUsage().rss;
  const t0 = process.hrtime.bigint();
  const s = scoreVideo(model, x, T, projections);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!s.casP.every(Number.isFinite)) throw new Error('long_video: non-finite scores');
  console.log(JSON.stringify({ T, seconds, rssBeforeMB: rssBefore / 2 ** 20, peakRssMB: process.resourceUsage().maxRSS / 1024 }));
}

function main(): void {
  const D = Number(arg('dim', '2048'));
  if (process.env.LONG_VIDEO_T) return child(Number(process.env.LONG_VIDEO_T), D);
  const lengths = arg('lengths', '1000,5000,10000,20000,41800').split(',').map(Number);
  const threads = arg('threads', String(os.availableParallelism?.() ?? os.cpus().length));
  const rows: unknown[] = [];
  console.log(`stage-1 scoring of one video, D = ${D}, ${threads} threads (each length in a fresh process)`);
  for (const T of lengths) {
    const out = execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', __filename, '--dim', String(D)], {
      env: { ...process.env, LONG_VIDEO_T: String(T), PSTAL_NUM_THREADS: threads },
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { T: number; seconds: number; rssBeforeMB: number; peakRssMB: number };
    rows.push(r);
    console.log(`T = ${String(T).padStart(6)}: ${r.seconds.toFixed(2).padStart(8)} s, ${(r.seconds / T * 1e3).toFixed(3)} ms a snippet, peak RSS ${r.peakRssMB.toFixed(0)} MB (${r.rssBeforeMB.toFixed(0)} MB with the features loaded)`);
  }
  const file = arg('out', '');
  if (file) fs.writeFileSync(file, JSON.stringify({ dim: D, threads: Number(threads), rows }, null, 1) + '\n');
}

main();
