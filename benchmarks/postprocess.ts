/**
 * postprocess.ts: stage-1 post-processing throughput on a THUMOS14-sized test set (212 videos,
 * ~330 snippets each, 20 classes, ~2 predicted classes a video, the reference's 10 cas + 9
 * agnostic thresholds, smooth random scores): candidate proposals, class-wise soft-NMS, both,
 * and ABA on TSPNet-sized proposal sets. When python3 with numpy and scipy is available, the
 * same set goes through scripts/postprocess-bench.py (plain numpy, vectorised) in the same run
 * as the baseline.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Proposal, boundaryAdaptation, defaultProposalOptions, generateProposals, softNms } from '../lib/postprocess';
import { Rng } from '../lib/util/rng';
import { BenchResult, timeIt } from './harness';

interface Video {
  T: number;
  C: number;
  classes: number[];
  cas: Float32Array;
  agnostic: Float32Array;
  vidScore: Float32Array;
}

const VIDEOS = 212;
const CLASSES = 20;

/** Sigmoid of a few Gaussian bumps plus noise per column: smooth, mostly low, some action runs. */
function smooth(rng: Rng, T: number, C: number, strong: Set<number>): Float32Array {
  const x = new Float32Array(T * C);
  for (let c = 0; c < C; c++) {
    const n = strong.has(c) ? 2 + rng.int(6) : rng.int(2);
    const bumps = Array.from({ length: n }, () => ({ mu: rng.range(0, T), w: rng.range(2, 15), h: rng.range(2, 6) }));
    let noise = 0;
    for (let t = 0; t < T; t++) {
      noise = 0.8 * noise + 0.35 * rng.normal(); // correlated noise: runs split and merge across thresholds
      let logit = -3.5 + noise;
      for (const b of bumps) logit += b.h * Math.exp(-0.5 * ((t - b.mu) / b.w) ** 2);
      x[t * C + c] = 1 / (1 + Math.exp(-logit));
    }
  }
  return x;
}

function makeSet(rng: Rng): Video[] {
  return Array.from({ length: VIDEOS }, () => {
    const T = 200 + rng.int(261); // 200 .. 460, mean 330
    const u = rng.uniform();
    const K = u < 0.3 ? 1 : u < 0.7 ? 2 : 3;
    const classes: number[] = [];
    while (classes.length < K) {
      const c = rng.int(CLASSES);
      if (!classes.includes(c)) classes.push(c);
    }
    classes.sort((a, b) => a - b);
    const cas = smooth(rng, T, CLASSES, new Set(classes));
    const agnostic = smooth(rng, T, 1, new Set([0]));
    const vidScore = Float32Array.from({ length: CLASSES }, (_, c) => (classes.includes(c) ? 0.8 : 0.1));
    return { T, C: CLASSES, classes, cas, agnostic, vidScore };
  });
}

/** Runs the numpy baseline on the same set; undefined when python3/numpy/scipy are missing. */
function numpyBaseline(set: Video[]): { proposalsSeconds: number; nmsSeconds: number; totalSeconds: number; count: number } | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-bench-post-'));
  try {
    let casOffset = 0;
    let agnOffset = 0;
    const meta = set.map((v) => {
      const m = { T: v.T, C: v.C, classes: v.classes, casOffset, agnOffset };
      casOffset += v.cas.length;
      agnOffset += v.agnostic.length;
      return m;
    });
    const cat = (parts: Float32Array[]): Buffer => Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
    fs.writeFileSync(path.join(dir, 'set.json'), JSON.stringify({ videos: meta }));
    fs.writeFileSync(path.join(dir, 'cas.f32'), cat(set.map((v) => v.cas)));
    fs.writeFileSync(path.join(dir, 'agnostic.f32'), cat(set.map((v) => v.agnostic)));
    const script = path.join(__dirname, '..', 'scripts', 'postprocess-bench.py');
    const r = spawnSync(process.env.PYTHON ?? 'python3', [script, dir], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) {
      process.stderr.write(`bench postprocess: numpy baseline unavailable (${(r.stderr || String(r.error)).trim().split('\n').pop()})\n`);
      return undefined;
    }
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchPostprocess(options: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const rng = new Rng(14);
  const set = makeSet(rng);
  const opts = defaultProposalOptions();
  const reps = options.quick ? 3 : 7;
  const candidatesOf = (v: Video): Proposal[] => generateProposals(v.cas, v.agnostic, v.T, v.C, v.classes, v.vidScore, opts);

  const cands = set.map(candidatesOf);
  const total = cands.reduce((s, c) => s + c.length, 0);
  const tProposals = timeIt(() => set.forEach(candidatesOf), reps, 1);
  const tNms = timeIt(() => cands.forEach((c) => softNms(c)), reps, 1);
  const tBoth = timeIt(() => set.forEach((v) => softNms(candidatesOf(v))), reps, 1);

  const base = numpyBaseline(set);
  if (base && base.count !== total) process.stderr.write(`bench postprocess: numpy baseline kept ${base.count} proposals, ours ${total}\n`);
  const withBase = (seconds: number | undefined): Partial<BenchResult> =>
    seconds === undefined ? {} : { baseline: seconds, baselineName: 'numpy/scipy (scripts/postprocess-bench.py)' };

  const out: BenchResult[] = [
    { name: `candidates per video (${VIDEOS} videos, 19 thresholds)`, value: total / VIDEOS, unit: 'proposals' },
    { name: 'stage-1 proposals, whole set', value: tProposals, unit: 's', ...withBase(base?.proposalsSeconds) },
    { name: 'class-wise soft-NMS, whole set', value: tNms, unit: 's', ...withBase(base?.nmsSeconds) },
    { name: 'proposals + soft-NMS, whole set', value: tBoth, unit: 's', ...withBase(base?.totalSeconds) },
    {
      name: 'proposals + soft-NMS throughput', value: VIDEOS / tBoth, unit: 'videos/s',
      ...(base ? { baseline: VIDEOS / base.totalSeconds, baselineName: 'numpy/scipy (scripts/postprocess-bench.py)' } : {}),
    },
  ];

  // ABA (SPEC §5) at TSPNet's sizes: up to 3000 proposals a video, scored for 2 classes.
  const abaSets = Array.from({ length: options.quick ? 20 : VIDEOS }, () => {
    const props: Proposal[] = [];
    for (let i = 0; i < 1500; i++) {
      const start = rng.range(0, 200);
      const end = start + rng.range(0.5, 20);
      for (const c of [3, 9]) props.push({ classIndex: c, score: rng.uniform(), start, end });
    }
    return props;
  });
  const tAba = timeIt(() => abaSets.forEach((p) => boundaryAdaptation(p)), options.quick ? 2 : 3, 1);
  out.push({ name: 'ABA, 2 x 1500 proposals a video', value: abaSets.length / tAba, unit: 'videos/s' });
  return out;
}
