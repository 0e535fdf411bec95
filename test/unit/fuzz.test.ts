/**
 * Fuzzing every reader of outside data (CI size: 4,000 seeded cases plus 1,000 argument vectors;
 * test/soak/fuzz.ts runs 10^5): mutated and truncated .npy, safetensors, torch zip archives, gt /
 * results / proposals JSON, point-label csv, split and ambiguous lists and YAML configs each give a
 * result that keeps its invariants or an Error naming the file; never another exception, a hang or
 * an allocation beyond a few times the file. Video names with path separators (split lists, csv
 * video ids) never make a path outside their folder, and a FIFO, a folder or a link to /dev/zero
 * in place of any file is refused at once. Plus the regression inputs the fuzzer found.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fuzzWithWatchdog, fuzzArgs } from '../helpers/fuzz';
import { readTorchCheckpoint } from '../../lib/io/torch';
import { loadSafetensors } from '../../lib/io/safetensors';

test('4000 mutated inputs over every reader: an Error naming the file or a valid result, no hang', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-fuzz-'));
  try {
    const r = await fuzzWithWatchdog({ cases: 4000, seed: 13, tmp, hangMs: 15000 });
    t.log(`${r.cases} cases in ${r.seconds.toFixed(1)} s; slowest ${r.slowest.target} #${r.slowest.caseIndex} ${r.slowest.ms.toFixed(1)} ms`);
    for (const f of r.failures) t.log(`[${f.target} #${f.caseIndex}] ${f.why}`);
    t.is(r.cases, 4000);
    t.deepEqual(r.failures.map((f) => `${f.target} #${f.caseIndex}: ${f.why}`), []);
    for (const [name, s] of Object.entries(r.byTarget)) t.true(s.rejected > 0 && s.accepted + s.rejected === s.cases, name);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('1000 mutated argument vectors: every rejection is a usage error', (t) => {
  t.deepEqual(fuzzArgs({ cases: 1000, seed: 13 }).map((f) => `${f.input}: ${f.why}`), []);
});

test('regressions found by fuzzing: a zip64 entry count of billions, negative safetensors shapes and offsets', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-fuzzreg-'));
  try {
    // stage2.pt as the fuzzer mutated it (test/soak/fuzz.ts seed 1): its zip64 end-of-central-directory
    // record says there are about 10^9 entries; fflate walked them, a hang
    const f1 = path.join(__dirname, '..', 'fixtures', 'torch', 'fuzz-zip64-count.pt');
    // a count, not a clock: the refusal comes from the entry-count guard of lib/io/torch.ts (the
    // message names the file's size), which stops the walk after at most size / 46 entries (192
    // here) instead of the 10^9 the record claims
    const size = fs.statSync(f1).size;
    const e = t.throws(() => readTorchCheckpoint(f1), { message: /fuzz-zip64-count\.pt: damaged or truncated zip archive \(its directory claims more entries/ });
    t.regex(e!.message, new RegExp(`than a file of ${size} bytes can hold`));
    t.true(Math.floor(size / 46) < 200, `the guard walks at most ${Math.floor(size / 46)} entries`);
    // safetensors: shape [-3, -4] (12 values) and offsets [-8, 40] used to give a tensor of negative shape or a RangeError
    const st = (header: object, data: number) => {
      const h = Buffer.from(JSON.stringify(header));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      return Buffer.concat([len, h, Buffer.alloc(data)]);
    };
    const f2 = path.join(dir, 'neg.safetensors');
    fs.writeFileSync(f2, st({ a: { dtype: 'F32', shape: [-3, -4], data_offsets: [0, 48] } }, 48));
    t.throws(() => loadSafetensors(f2), { message: /neg\.safetensors: not a valid safetensors file: tensor 'a': shape \[-3,-4\] is not a list of non-negative integers/ });
    fs.writeFileSync(f2, st({ a: { dtype: 'F32', shape: [12], data_offsets: [-8, 40] } }, 48));
    t.throws(() => loadSafetensors(f2), { message: /neg\.safetensors: not a valid safetensors file: tensor 'a': data_offsets \[-8,40\]/ });
    fs.writeFileSync(f2, st([1, 2] as unknown as object, 0));
    t.throws(() => loadSafetensors(f2), { message: /neg\.safetensors: .*not a JSON object/ });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
