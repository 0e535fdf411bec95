/**
 * synth.ts: seconds to synthesize the THUMOS14 annotation set's features (412 videos, ~136k
 * snippets) at D = 2048 (quick: D = 256) into a temporary folder, and the snippet rate. Uses the
 * real annotations (PSTAL_THUMOS14, or ../shared/data/THUMOS14 beside the project) when present,
 * else an invented 412-video set of THUMOS-like durations.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../lib/data/synth';
import { BenchResult } from './harness';

const ANNOTATIONS = process.env.PSTAL_THUMOS14 ?? path.resolve(__dirname, '..', '..', 'shared', 'data', 'THUMOS14');

export async function benchSynth(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const dim = opts.quick ? 256 : 2048;
  const real = fs.existsSync(path.join(ANNOTATIONS, 'gt_full.json'));
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-bench-synth-'));
  try {
    const s = await synthesizeDataset({ out, dim, ...(real ? { annotations: ANNOTATIONS } : { videos: 412 }) });
    const set = real ? 'THUMOS14 annotations' : 'invented 412 videos';
    return [
      { name: `synth ${set}, ${s.train + s.test} videos, ${s.snippets} snippets, D=${dim}`, value: s.seconds, unit: 's' },
      { name: `synth rate, D=${dim}`, value: s.snippets / s.seconds, unit: 'snippets/s' },
    ];
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}
