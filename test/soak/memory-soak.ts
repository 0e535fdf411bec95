/**
 * memory-soak.ts: resident memory over a long stage-1 training at D = 256 and over many detect()
 * calls in one process. Writes OUT/memory.csv (phase, step, rss_mb, heap_mb, external_mb) and
 * OUT/memory.svg (and the C heap in use, c_heap_mb, and the native buffer wrappers made so far), prints the growth of each phase after warm-up, and exits 1 when a phase grows by
 * more than 5 % (median RSS of the last fifth of its samples vs the median right after warm-up).
 *
 *   node --expose-gc -r ts-node/register/transpile-only test/soak/memory-soak.ts \
 *     [--iterations 2000] [--detects 2000] [--dim 256] [--out .bench/memory] [--threads 1]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset } from '../../lib/data';
import { trainStage1 } from '../../lib/models/hrpro/train_stage1';
import { stage1ConfigFrom, stage2ConfigFrom } from '../../lib/models/hrpro/config';
import { finishStage1 } from '../../lib/models/hrpro/pipeline';
import { trainStage2 } from '../../lib/models/hrpro/train_stage2';
import { readProposals } from '../../lib/formats/proposals';
import { loadHrPro, detect } from '../../lib/models/hrpro/detect';
import { cpu, setNumThreads } from '../../lib/runtime/native';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

interface Sample {
  phase: string;
  step: number;
  rss: number;
  heap: number;
  external: number;
  /** the C heap in use (glibc malloc; -1 elsewhere) and the native buffer wrappers made so far */
  cHeap: number;
  wrappers: number;
}

const MB = 1024 * 1024;
const gc = (global as { gc?: () => void }).gc;

function sample(phase: string, step: number): Sample {
  gc?.();
  const m = process.memoryUsage();
  const n = cpu().memory_stats() as { mallocInUseBytes: number; createdBuffers: number };
  return { phase, step, rss: m.rss / MB, heap: m.heapUsed / MB, external: m.external / MB, cHeap: n.mallocInUseBytes / MB, wrappers: n.createdBuffers };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

/** Growth after warm-up: the last fifth's median RSS over the median of the fifth after warm-up (the first 20 %). */
function growth(samples: Sample[]): { warm: number; end: number; growth: number } {
  const n = samples.length;
  const fifth = Math.max(1, Math.floor(n / 5));
  const warm = median(samples.slice(fifth, 2 * fifth).map((s) => s.rss));
  const end = median(samples.slice(n - fifth).map((s) => s.rss));
  return { warm, end, growth: end / warm - 1 };
}

function svg(samples: Sample[]): string {
  const W = 720;
  const H = 300;
  const P = 50;
  const phases = [...new Set(samples.map((s) => s.phase))];
  const maxRss = Math.max(...samples.map((s) => s.rss)) * 1.05;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H * phases.length}" font-family="sans-serif" font-size="11">`];
  phases.forEach((ph, k) => {
    const ss = samples.filter((s) => s.phase === ph);
    const maxStep = Math.max(1, ...ss.map((s) => s.step));
    const x = (v: number) => P + ((W - 2 * P) * v) / maxStep;
    const y = (v: number) => k * H + H - P + (-(H - 2 * P) * v) / maxRss;
    parts.push(`<text x="${P}" y="${k * H + 20}">${ph}: RSS (MB) by step</text>`);
    parts.push(`<line x1="${P}" y1="${y(0)}" x2="${W - P}" y2="${y(0)}" stroke="#888"/><line x1="${P}" y1="${y(0)}" x2="${P}" y2="${y(maxRss)}" stroke="#888"/>`);
    for (const v of [0, maxRss / 2, maxRss]) parts.push(`<text x="5" y="${y(v) + 4}">${v.toFixed(0)}</text>`);
    parts.push(`<text x="${W - P}" y="${y(0) + 15}" text-anchor="end">${maxStep}</text>`);
    parts.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${ss.map((s) => `${x(s.step).toFixed(1)},${y(s.rss).toFixed(1)}`).join(' ')}"/>`);
    parts.push(`<polyline fill="none" stroke="#ff7f0e" stroke-width="1" points="${ss.map((s) => `${x(s.step).toFixed(1)},${y(s.heap + s.external).toFixed(1)}`).join(' ')}"/>`);
  });
  parts.push(`<text x="${W - P}" y="15" text-anchor="end" fill="#1f77b4">RSS</text><text x="${W - P}" y="28" text-anchor="end" fill="#ff7f0e">JS heap + external</text></svg>`);
  return parts.join('\n');
}

async function main(): Promise<number> {
  const iterations = Number(arg('iterations', '2000'));
  const detects = Number(arg('detects', '2000'));
  const D = Number(arg('dim', '256'));
  const out = path.resolve(arg('out', path.join('.bench', 'memory')));
  setNumThreads(Number(arg('threads', process.env.PSTAL_NUM_THREADS ?? '1')));
  if (!gc) console.error('memory-soak: run with node --expose-gc for steadier numbers');
  fs.mkdirSync(out, { recursive: true });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-mem-'));
  const samples: Sample[] = [];
  try {
    await synthesizeDataset({ out: path.join(root, 'data'), dim: D, seed: 0, videos: 40, knobs: { durationScale: 0.3 } });
    const ds = loadDataset(path.join(root, 'data'), loadConfig('thumos14', { featureDim: D }));
    const run = path.join(root, 'run');
    const every = Math.max(1, Math.floor(iterations / 200));
    const t0 = Date.now();
    const cfg = stage1ConfigFrom(ds.config, { iterations, testEvery: iterations, batchSize: 4, seed: 0, lr: 1e-4 });
    const r = await trainStage1(
      {
        out: run, classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous, blockedVideos: [], quiet: true, log: () => undefined,
        onIteration: (it: number) => {
          if (it % every === 0) samples.push(sample('stage 1', it));
        },
      },
      cfg,
    );
    // stage 2 (one epoch) so that detect() runs both stages, as for a trained run
    const ctx1 = { out: run, classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous, blockedVideos: [], quiet: true, log: () => undefined };
    const f = finishStage1(ctx1, cfg, r.model);
    r.model.dispose();
    const r2 = await trainStage2({ ...ctx1, proposals: readProposals(f.proposalsFile) }, stage2ConfigFrom(ds.config, { epochs: 1, seed: 0 }));
    r2.model.dispose();
    const trainSeconds = (Date.now() - t0) / 1000;
    const model = loadHrPro(run);
    if (!model.stage2) throw new Error('memory-soak: the run has no stage-2 checkpoint');
    const t1 = Date.now();
    const dEvery = Math.max(1, Math.floor(detects / 200));
    for (let i = 1; i <= detects; i++) {
      const v = ds.test[i % ds.test.length];
      detect(model, v.features, { name: v.name });
      if (i % dEvery === 0) samples.push(sample('detect', i));
    }
    model.dispose();
    const detectSeconds = (Date.now() - t1) / 1000;
    fs.writeFileSync(path.join(out, 'memory.csv'), 'phase,step,rss_mb,heap_mb,external_mb,c_heap_mb,wrappers\n' + samples.map((s) => `${s.phase},${s.step},${s.rss.toFixed(2)},${s.heap.toFixed(2)},${s.external.toFixed(2)},${s.cHeap.toFixed(2)},${s.wrappers}`).join('\n') + '\n');
    fs.writeFileSync(path.join(out, 'memory.svg'), svg(samples));
    let bad = 0;
    const summary: Record<string, unknown> = { machine: `${os.cpus()[0]?.model} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`, D, iterations, detects, trainSeconds, detectSeconds };
    for (const ph of ['stage 1', 'detect']) {
      const g = growth(samples.filter((s) => s.phase === ph));
      summary[ph] = { warmRssMb: +g.warm.toFixed(1), endRssMb: +g.end.toFixed(1), growthPercent: +(100 * g.growth).toFixed(2) };
      if (g.growth > 0.05) bad++;
    }
    console.log(JSON.stringify(summary, null, 2));
    console.log(`wrote ${path.join(out, 'memory.csv')} and memory.svg`);
    return bad ? 1 : 0;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().then((c) => (process.exitCode = c), (e) => { console.error(e); process.exitCode = 1; });
