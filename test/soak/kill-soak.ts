/**
 * kill-soak.ts: the long kill -9 test. Starts a real `pstal run` on a tiny synthetic dataset, sends
 * SIGKILL at N (default 200) seeded random moments, resumes each time, and compares every completed
 * run with an uninterrupted one (bit-identical metrics without wall times, best checkpoints, results,
 * proposals); checks that every file of the run folder reads after each kill and that no temporary
 * file outlives a resume. Exit 0 when all hold.
 *
 *   npx ts-node --transpile-only test/soak/kill-soak.ts [--kills 200] [--seed 1] [--dir /tmp/pstal-kill-soak] [--keep]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { killAndResume } from '../helpers/killrun';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

async function main(): Promise<number> {
  const kills = Number(arg('kills', '200'));
  const seed = Number(arg('seed', '1'));
  const root = arg('dir', path.join(os.tmpdir(), `pstal-kill-soak-${process.pid}`));
  const r = await killAndResume({ root, kills, seed, log: (s) => console.error(s) });
  console.log(JSON.stringify({ ...r, mismatches: r.mismatches.length, unreadable: r.unreadable.length, staleTempsAfterResume: r.staleTempsAfterResume.length }, null, 2));
  for (const m of [...r.mismatches, ...r.unreadable, ...r.staleTempsAfterResume]) console.error(m);
  if (!process.argv.includes('--keep')) fs.rmSync(root, { recursive: true, force: true });
  return r.mismatches.length || r.unreadable.length || r.staleTempsAfterResume.length || r.kills < kills ? 1 : 0;
}

main().then((c) => (process.exitCode = c), (e) => { console.error(e); process.exitCode = 1; });
