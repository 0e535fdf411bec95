/**
 * tspnet.ts: TSPNet training iterations and test passes at THUMOS14 scale: the real THUMOS14
 * annotations (../shared/data/THUMOS14, or PSTAL_THUMOS14) with `pstal synth` features at D = 2048
 * and D = 256, side by side in the same run with the reference's own train_one_proposal_batch and
 * test_proposal on the same files (scripts/bench-reference-tspnet.py; needs /usr/bin/python3 with
 * torch, torchvision, pandas, and a clone or mirror of zyxia1009/CVPR2024-TSPNet in
 * PSTAL_TSPNET_REFERENCE). Without them only our figures are reported.
 *
 * Base proposals (deterministic, seed 0, written once and read by both sides): per video, 10 jittered
 * copies of every ground-truth segment (boundaries moved by N(0, 0.15 x length)) and random segments
 * (uniform start, log-uniform length 1-40 s) up to clamp(3T, 1000, 3000) proposals, seconds with 3
 * decimals, none shorter than 0.5 s. Both sides keep every listed segment (ours: keepDuplicates), so
 * they see the same proposals; none exceeds the 3000 cap, so no sampling.
 *
 * One iteration = 10 training videos in split order (iteration i: videos 10i .. 10i + 9): forward
 * (RoI align, fusion, three heads), point + saliency losses, backward of the mean, one Adam step;
 * a test pass = every test video (eval-mode forward, scores, ABA, soft-NMS, ambiguous filter) and
 * the mAP. Median of the iterations after one warm-up; the test pass once, after them.
 *
 * Sizes: `--quick` is D = 256 only, 2 iterations, the first 40 videos of each split;
 * PSTAL_BENCH_TSPNET_DIMS (e.g. 256,2048), PSTAL_BENCH_TSPNET_ITERATIONS and PSTAL_BENCH_TSPNET_VIDEOS
 * (the first N videos of each split; 0: all) override either size.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { BenchResult } from './harness';
import { synthesizeDataset } from '../lib/data/synth';
import { loadConfig, loadDataset, VideoRecord } from '../lib/data';
import { TspNetModel } from '../lib/models/tspnet/model';
import { batchStep, TrainItem } from '../lib/models/tspnet/train';
import { testTspNet } from '../lib/models/tspnet/evaluate';
import { proposalLabels, readTspPoints } from '../lib/models/tspnet/labels';
import { loadProposalsFor, writeBaseProposals, BaseProposal } from '../lib/models/tspnet/proposals';
import { tspnetConfigFrom } from '../lib/models/tspnet/config';
import { Adam } from '../lib/nn/optim';
import { Rng } from '../lib/util/rng';
import { getNumThreads } from '../lib/runtime/native';

const ANNOTATIONS = process.env.PSTAL_THUMOS14 ?? path.resolve(__dirname, '..', '..', 'shared', 'data', 'THUMOS14');
const REFERENCE = process.env.PSTAL_TSPNET_REFERENCE;
const BATCH = 10;

interface ReferenceTiming {
  train_iteration_s: number[];
  test_pass_s?: number;
  test_videos?: number;
  test_average_map?: number | null;
  threads: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const envInt = (name: string): number | undefined => (process.env[name] !== undefined ? Number(process.env[name]) : undefined);

/** The benchmark's base proposals of a video (seconds), deterministic in `rng`. */
export function benchProposals(v: Pick<VideoRecord, 'T' | 'gt'>, secondsPerSnippet: number, rng: Rng): BaseProposal[] {
  const end = v.T * secondsPerSnippet;
  const M = Math.min(3000, Math.max(1000, 3 * v.T));
  const out: BaseProposal[] = [];
  const push = (s: number, e: number): void => {
    const a = Math.round(Math.max(0, s) * 1000) / 1000;
    const b = Math.round(Math.min(end, e) * 1000) / 1000;
    if (b - a >= 0.5) out.push({ segment: [a, b] });
  };
  for (const g of v.gt) {
    const [s, e] = g.segment;
    const w = e - s;
    for (let k = 0; k < 10 && out.length < M; k++) push(s + 0.15 * w * rng.normal(), e + 0.15 * w * rng.normal());
  }
  for (let guard = 0; out.length < M && guard < 100 * M; guard++) {
    const len = Math.exp(Math.log(1) + rng.uniform() * (Math.log(40) - Math.log(1)));
    const s = rng.uniform() * Math.max(0, end - 0.5);
    push(s, s + len);
  }
  return out;
}

function runReference(dir: string, files: { train: string; test: string }, iterations: number, testVideos: number): ReferenceTiming | null {
  if (!REFERENCE || !fs.existsSync(REFERENCE)) {
    console.error(`bench tspnet: ${REFERENCE ? `no reference at ${REFERENCE}` : 'no reference given'} (set PSTAL_TSPNET_REFERENCE to a clone of zyxia1009/CVPR2024-TSPNet); reporting ours only`);
    return null;
  }
  const args = [path.join(__dirname, '..', 'scripts', 'bench-reference-tspnet.py'), '--data', dir, '--reference', REFERENCE,
    '--proposals-train', files.train, '--proposals-test', files.test, '--iterations', String(iterations), '--threads', String(getNumThreads()),
    '--test-videos', String(testVideos)];
  const r = spawnSync(process.env.PSTAL_PYTHON ?? '/usr/bin/python3', args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    console.error(`bench tspnet: the reference did not run (${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}); reporting ours only`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ReferenceTiming;
}

export async function benchTspNet(opts: { quick?: boolean }): Promise<BenchResult[]> {
  if (!fs.existsSync(path.join(ANNOTATIONS, 'gt_full.json'))) throw new Error(`no THUMOS14 annotations at ${ANNOTATIONS} (set PSTAL_THUMOS14)`);
  const dims = process.env.PSTAL_BENCH_TSPNET_DIMS?.split(',').map(Number) ?? (opts.quick ? [256] : [2048, 256]);
  const videos = envInt('PSTAL_BENCH_TSPNET_VIDEOS') ?? (opts.quick ? 40 : 0);
  const rows: BenchResult[] = [];
  for (const D of dims) {
    const iterations = envInt('PSTAL_BENCH_TSPNET_ITERATIONS') ?? (opts.quick ? 2 : D >= 1024 ? 3 : 5);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pstal-bench-tspnet-${D}-`));
    try {
      await synthesizeDataset({ out: dir, annotations: ANNOTATIONS, dim: D, seed: 0, ...(videos > 0 && { videos }) });
      const config = loadConfig('thumos14', { featureDim: D });
      const ds = loadDataset(dir, config);
      const cfg = tspnetConfigFrom(config, { keepDuplicates: true });
      const C = ds.classNames.length;
      // the base proposals, both subsets, read back through the same loader as training
      const rng = new Rng(0);
      const sps = config.snippetFrames / config.featureFps;
      const files = { train: path.join(dir, 'bench_proposals_train.json'), test: path.join(dir, 'bench_proposals_test.json') };
      writeBaseProposals(files.train, Object.fromEntries(ds.train.map((v) => [v.name, benchProposals(v, sps, rng)])), 'pstal bench tspnet');
      writeBaseProposals(files.test, Object.fromEntries(ds.test.map((v) => [v.name, benchProposals(v, sps, rng)])), 'pstal bench tspnet');
      const props = { train: loadProposalsFor(files.train, ds.train, ds.classNames, cfg), test: loadProposalsFor(files.test, ds.test, ds.classNames, cfg) };
      const points = readTspPoints(dir, ds.train, ds.classNames, config);
      const items: TrainItem[] = Array.from({ length: BATCH * (iterations + 1) }, (_, i) => {
        const v = ds.train[i % ds.train.length];
        const p = props.train.get(v.name)!;
        return { v, props: p.snippets32, labels: proposalLabels(p.snippets, points.get(v.name) ?? [], C, cfg.softValue) };
      });

      const model = new TspNetModel({ featureDim: D, numClasses: C }, new Rng(0));
      const adam = new Adam(model.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
      const times: number[] = [];
      for (let i = 0; i < iterations + 1; i++) {
        const t0 = process.hrtime.bigint();
        batchStep(model, adam, items.slice(BATCH * i, BATCH * (i + 1)), cfg);
        if (i > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
      }
      const t0 = process.hrtime.bigint();
      const pass = testTspNet(model, ds.test, props.test, ds.classNames, cfg, { ambiguous: ds.ambiguous, blockedVideos: config.blockedVideos });
      const testSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
      adam.dispose();
      model.dispose();
      const M = items.slice(BATCH).map((it) => it.props.length / 2);
      console.error(`bench tspnet: ours, D=${D}: training ${median(times).toFixed(3)} s/it, test pass ${testSeconds.toFixed(2)} s; the reference next...`);
      const ref = runReference(dir, files, iterations, videos);
      const threads = ref ? `PyTorch ${ref.threads} threads` : '';
      rows.push({
        name: `tspnet training iteration (10 THUMOS14 videos, ${Math.min(...M)}-${Math.max(...M)} proposals, D=${D}), s/it (lower is better)`,
        value: median(times),
        unit: 's/it',
        ...(ref && { baseline: median(ref.train_iteration_s), baselineName: threads }),
      });
      rows.push({
        name: `tspnet test pass (${ds.test.length} videos: forward, ABA, soft-NMS, ambiguous filter, mAP ${(100 * (pass.evaluation?.map.reduce((s, x) => s + x, 0) ?? 0) / cfg.tiou.length).toFixed(2)}${ref?.test_average_map != null ? ` vs ${(100 * ref.test_average_map).toFixed(2)}` : ''}), D=${D}`,
        value: testSeconds,
        unit: 's',
        ...(ref?.test_pass_s !== undefined && { baseline: ref.test_pass_s, baselineName: threads }),
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}
