/**
 * stage2.ts: HR-Pro stage-2 training epochs and test passes at THUMOS14 scale (the real THUMOS14
 * annotations with synthetic features, D = 2048 and D = 256). Stage 2's cost is set by the number
 * of proposals, not by what they are: every training video gets the reference's cap of 1000
 * proposals (real stage-1 runs exceed it) around its ground-truth instances with their RPs as
 * targets, every test video PP_TEST proposals (the mean a trained stage 1 gives on this data; see
 * the README). One epoch = 200 training videos in batches of 10 (20 batches), as the reference; at
 * D = 2048 only 2 batches and 20 test videos are timed.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BenchResult } from './harness';
import { synthesizeDataset } from '../lib/data/synth';
import { loadConfig, loadDataset } from '../lib/data';
import { trainStage2 } from '../lib/models/hrpro/train_stage2';
import { packByClass, packSpans, ProposalsFile } from '../lib/formats/proposals';
import { stage2ConfigFrom } from '../lib/models/hrpro/config';
import { RankedProposals, Span } from '../lib/models/hrpro/ranking';
import { Rng } from '../lib/util/rng';

const ANNOTATIONS = process.env.PSTAL_THUMOS14 ?? path.resolve(__dirname, '..', '..', 'shared', 'data', 'THUMOS14');
// measured: the trained stage 1 of the README's D = 256 run gives 185 test proposals a video (max 1252)
const PP_TEST = Number(process.env.PSTAL_BENCH_PP_TEST ?? 185);

function spansAround(rng: Rng, gt: { segment: [number, number] }[], duration: number, n: number): Span[] {
  const out: Span[] = [];
  for (let i = 0; i < n; i++) {
    const g = gt.length ? gt[i % gt.length].segment : [0, duration];
    const len = Math.max(0.32, (g[1] - g[0]) * (0.5 + rng.uniform()));
    const s = Math.max(0, Math.min(duration - len, g[0] + (rng.uniform() - 0.5) * len));
    out.push([s, Math.min(duration, s + len), rng.uniform()]);
  }
  return out;
}

export async function benchStage2(opts: { quick?: boolean }): Promise<BenchResult[]> {
  if (!fs.existsSync(path.join(ANNOTATIONS, 'gt_full.json'))) throw new Error(`no THUMOS14 annotations at ${ANNOTATIONS} (set PSTAL_THUMOS14)`);
  const rows: BenchResult[] = [];
  for (const D of opts.quick ? [256] : [2048, 256]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pstal-bench-stage2-${D}-`));
    try {
      await synthesizeDataset({ out: path.join(dir, 'data'), annotations: ANNOTATIONS, dim: D, seed: 0 });
      const config = loadConfig('thumos14', { featureDim: D });
      const full = loadDataset(path.join(dir, 'data'), config);
      // D = 2048 costs minutes an epoch on 2 cores: time 2 batches and 20 test videos there
      const ds = D >= 1024 ? { ...full, train: full.train.slice(0, 20), test: full.test.slice(0, 20) } : full;
      const rng = new Rng(0);
      const sps = config.snippetFrames / config.featureFps;
      const proposals: ProposalsFile = { train: {}, test: {} };
      for (const v of ds.train) {
        const dur = v.T * sps;
        const r: RankedProposals = { PP: { [ds.classNames[0]]: spansAround(rng, v.gt, dur, 667) }, RP: { [ds.classNames[0]]: v.gt.map((g) => [g.segment[0], g.segment[1], 1] as Span) }, NP: [] };
        for (let i = 0; i < 333; i++) {
          const s = rng.uniform() * (v.T - 2);
          r.NP.push([s, s + 1 + rng.uniform() * 5, -0.5]);
        }
        // packed as readProposals gives them to stage 2
        proposals.train[v.name] = { PP: packByClass(r.PP), RP: r.RP, NP: packSpans(r.NP) };
      }
      for (const v of ds.test) proposals.test[v.name] = { PP: packByClass({ [ds.classNames[0]]: spansAround(rng, v.gt, v.T * sps, PP_TEST) }) };
      const cfg = stage2ConfigFrom(config, { epochs: 1, seed: 0 });
      const out = path.join(dir, 'run');
      let lastBatch = 0n;
      const t0 = process.hrtime.bigint();
      await trainStage2({ out, classNames: ds.classNames, train: ds.train, test: ds.test, proposals, ambiguous: ds.ambiguous, blockedVideos: config.blockedVideos, quiet: true, log: () => undefined,
        onBatch: () => { lastBatch = process.hrtime.bigint(); } }, cfg);
      const t1 = process.hrtime.bigint();
      // the epoch ends with its last batch; the rest is the test pass (and one checkpoint write)
      const testSeconds = Number(t1 - lastBatch) / 1e9;
      const total = Number(t1 - t0) / 1e9;
      const batches = Math.floor(ds.train.length / 10);
      rows.push({ name: `stage-2 training, ${ds.train.length} videos x 1000 proposals in batches of 10, D=${D}: seconds a batch`, value: (total - testSeconds) / batches, unit: 's/batch' });
      rows.push({ name: `stage-2 test pass, ${ds.test.length} videos x ${PP_TEST} proposals (original + refined, soft-NMS, mAP), D=${D}`, value: testSeconds, unit: 's' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}
