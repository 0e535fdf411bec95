/**
 * eval.ts: detection-evaluation throughput (lib/eval, SPEC section 6) on the THUMOS14 test set:
 * the real test ground truth (gt_full.json in PSTAL_THUMOS14, or in ../shared/data/THUMOS14 beside
 * the project) when present (212 videos, ~3300 segments, 20 classes; else a synthetic set of the
 * same size), 200,000 detections near the ground truth (jittered copies) and in background, scored
 * at the 7 THUMOS14 tIoUs. Reports the median seconds per evaluation and detections per second.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DetectionResults, GroundTruth, THUMOS14_BLOCKED, evaluateDetection, loadGroundTruth, parseTiou } from '../lib/eval';
import { Rng } from '../lib/util/rng';
import { BenchResult, timeIt } from './harness';

const REAL_GT = path.join(process.env.PSTAL_THUMOS14 ?? path.resolve(__dirname, '..', '..', 'shared', 'data', 'THUMOS14'), 'gt_full.json');

function syntheticGroundTruth(rng: Rng): GroundTruth {
  const classes = Array.from({ length: 20 }, (_, c) => `class${c}`);
  const videos: GroundTruth['videos'] = {};
  for (let v = 0; v < 212; v++) {
    const segs: GroundTruth['videos'][string] = [];
    const cls = classes[rng.int(20)];
    for (let k = 0; k < 15; k++) {
      const s = rng.range(0, 200);
      segs.push({ label: rng.uniform() < 0.9 ? cls : classes[rng.int(20)], segment: [s, s + rng.range(1, 10)] });
    }
    videos[`video_test_${String(v).padStart(7, '0')}`] = segs;
  }
  return { classes, videos };
}

function detectionsNear(gt: GroundTruth, rng: Rng, total: number): DetectionResults {
  const entries = Object.entries(gt.videos).filter(([, s]) => s.length > 0);
  const out: DetectionResults = {};
  for (const [v] of entries) out[v] = [];
  for (let i = 0; i < total; i++) {
    const [v, segs] = entries[rng.int(entries.length)];
    const g = segs[rng.int(segs.length)];
    const L = g.segment[1] - g.segment[0];
    if (rng.uniform() < 0.7) {
      const s = g.segment[0] + 0.3 * L * rng.normal();
      out[v].push({ label: g.label, score: rng.uniform(), segment: [s, Math.max(s + 0.1, g.segment[1] + 0.3 * L * rng.normal())] });
    } else {
      const s = rng.range(0, 300);
      out[v].push({ label: gt.classes[rng.int(gt.classes.length)], score: rng.uniform(), segment: [s, s + rng.range(0.5, 20)] });
    }
  }
  return out;
}

export async function benchEval(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const rng = new Rng(11);
  const real = fs.existsSync(REAL_GT);
  const gt = real ? loadGroundTruth(REAL_GT, 'Test', { blockedVideos: THUMOS14_BLOCKED }) : syntheticGroundTruth(rng);
  const n = opts.quick ? 50_000 : 200_000;
  const results = detectionsNear(gt, rng, n);
  const tiou = parseTiou('0.1:0.7:0.1');
  const secs = timeIt(() => evaluateDetection(gt, results, { tiou }), opts.quick ? 3 : 7, 1);
  const what = `${real ? 'THUMOS14 test gt' : 'synthetic THUMOS14-sized gt'}, ${n / 1000}k detections, 7 tIoUs`;
  return [
    { name: `evaluateDetection (${what})`, value: secs, unit: 's' },
    { name: `evaluateDetection throughput (${what})`, value: n / secs, unit: 'detections/s' },
  ];
}

if (require.main === module) {
  benchEval({ quick: process.argv.includes('--quick') }).then((rows) => {
    for (const r of rows) console.log(`${r.name}: ${r.value.toPrecision(4)} ${r.unit}`);
  });
}
