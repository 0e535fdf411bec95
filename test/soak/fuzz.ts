/**
 * fuzz.ts: 10^5 seeded cases (default) over every reader of outside data (.npy, safetensors, torch
 * zip, gt / results / proposals JSON, point-label csv, split lists, ambiguous lists, YAML configs;
 * names that would be paths; FIFOs, folders and /dev/zero in place of a file) and the argument parser; see test/helpers/fuzz.ts for the mutations and the oracle. Prints a
 * summary (JSON) and each failure with the case index and its input (base64); exit 1 on any.
 *
 *   npx ts-node --transpile-only test/soak/fuzz.ts [--cases 100000] [--seed 1] [--only npy,torch]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fuzzWithWatchdog, fuzzArgs } from '../helpers/fuzz';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const cases = Number(arg('cases', '100000'));
const seed = Number(arg('seed', '1'));
const only = process.argv.includes('--only') ? arg('only', '').split(',') : undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-fuzz-'));
async function main(): Promise<void> {
  const r = await fuzzWithWatchdog({ cases, seed, tmp, only, maxFailures: 200, log: (s) => console.error(s) });
  const argFailures = fuzzArgs({ cases: Math.max(1000, Math.round(cases / 20)), seed });
  console.log(JSON.stringify({ seed, cases: r.cases, argCases: Math.max(1000, Math.round(cases / 20)), byTarget: r.byTarget, slowest: r.slowest, seconds: r.seconds, failures: r.failures.length + argFailures.length }, null, 2));
  for (const f of [...r.failures, ...argFailures]) console.error(`[${f.target} #${f.caseIndex}] ${f.why}\n  input (base64): ${f.input.slice(0, 400)}`);
  process.exitCode = r.failures.length + argFailures.length ? 1 : 0;
}
main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
