/**
 * `pstal run` reads a dataset's annotation files once: the checks of `pstal check` parse them and
 * hand the parse to the loader, and the evaluator's ground truth comes from the same parse.
 * Counted by a preload that wraps fs's readers (test/helpers/count-reads.js).
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';

const root = path.resolve(__dirname, '..', '..');

test('pstal run reads gt_full.json and the point csv once each', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-read-once-'));
  try {
    const data = path.join(dir, 'data');
    await synthesizeDataset({ out: data, dim: 16, seed: 0, videos: 8, knobs: { durationScale: 0.2 } });
    const countsFile = path.join(dir, 'reads.json');
    const r = spawnSync(
      process.execPath,
      ['-r', path.join(root, 'test', 'helpers', 'count-reads.js'), path.join(root, 'bin', 'pstal.js'), 'run', '--data', data, '--out', path.join(dir, 'run'),
        '--iterations', '2', '--test-every', '2', '--batch-size', '2', '--epochs', '1', '--quiet', '--threads', '1'],
      { cwd: dir, encoding: 'utf8', env: { ...process.env, PSTAL_TS: '1', PSTAL_COUNT_READS_OUT: countsFile } },
    );
    t.is(r.status, 0, r.stderr.slice(-3000));
    const counts = JSON.parse(fs.readFileSync(countsFile, 'utf8')) as Record<string, number>;
    const of = (rel: string): number => counts[path.join(data, rel)] ?? 0;
    t.is(of('gt_full.json'), 1, JSON.stringify(counts, null, 1));
    t.is(of(path.join('point_labels', 'point_gaussian.csv')), 1);
    // the counter sees reads at all (a counter that never counts would pass the two lines above with 0)
    t.true(of(path.join('features', 'train', 'video_validation_0000001.npy')) >= 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
