/**
 * kill -9 at random instants (CI size): a real `pstal run` on 12 tiny synthetic videos is SIGKILLed
 * at 20 seeded random moments over stage 1, the ranking, stage 2 and the checkpoint writes, and
 * `--resume`d each time; every completed run equals an uninterrupted one byte for byte (metrics
 * without wall times, best checkpoints, results, proposals), no file of the run folder is ever
 * unreadable, and no temporary file of a killed write survives a resume. test/soak/kill-soak.ts is
 * the long version (200 kills).
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { killAndResume } from '../helpers/killrun';

test('20 SIGKILLs at random moments, each followed by --resume: the same files as an uninterrupted run', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-kill-'));
  try {
    const r = await killAndResume({ root, kills: 20, seed: 2026, log: (s) => t.log(s) });
    t.log(`kills by phase: ${JSON.stringify(r.phases)}; ${r.duringWrites} during a write; ${r.completedCycles} completed runs compared; ${r.resumes} resumes; ${r.seconds.toFixed(0)} s`);
    t.is(r.kills, 20);
    t.true(r.completedCycles >= 1);
    t.deepEqual(r.mismatches, []);
    t.deepEqual(r.unreadable, []);
    t.deepEqual(r.staleTempsAfterResume, []);
    t.true(Object.keys(r.phases).length >= 2, JSON.stringify(r.phases));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
