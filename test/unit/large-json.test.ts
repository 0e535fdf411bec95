/**
 * Files larger than one JS string: readJsonTree (member-by-member parsing), the streamed atomic
 * writer, and RUN/proposals.json read packed. ActivityNet 1.3's stage 1 writes a 1.5 GB
 * proposals.json; these tests force the member-by-member path on small files (threshold 0, chunks of
 * a few bytes so every token crosses a chunk boundary somewhere).
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DuplicateKeyError, readJsonFile, readJsonTree, setJsonTreeThreshold, writeJsonFileAtomic } from '../../lib/util/json';
import { AtomicFileWriter, fsError, setWriteHook } from '../../lib/util/fs';
import { trainingProposals, testProposals } from '../../lib/models/hrpro/proposals';
import { readProposals } from '../../lib/formats/proposals';
import { Rng } from '../../lib/util/rng';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-large-json-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string | Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

/** A random JSON value with the awkward parts: escapes, brackets in strings, unicode, nesting, numbers in every form. */
function randomValue(rng: Rng, depth: number): unknown {
  const k = rng.int(depth > 3 ? 5 : 8);
  const strings = ['', 'a', 'x"y', 'b\\\\', '}{][,:', 'é ü 漢字 😀', '\\u0041\n\t', '"', ' spaced '];
  switch (k) {
    case 0:
      return null;
    case 1:
      return rng.int(2) === 0;
    case 2:
      return [0, -1, 1.5, -2.25e-7, 1e21, 123456789, -0.001][rng.int(7)];
    case 3:
    case 4:
      return strings[rng.int(strings.length)];
    case 5:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(5); i > 0; i--) o[strings[rng.int(strings.length)] + i] = randomValue(rng, depth + 1);
      return o;
    }
  }
}

test('readJsonTree parses exactly what JSON.parse does, whatever the chunk size and spacing', (t) => {
  const rng = new Rng(11);
  for (let i = 0; i < 300; i++) {
    const value = { top: randomValue(rng, 0), list: [randomValue(rng, 1), { x: randomValue(rng, 1) }], n: i, s: 'v"}' };
    const text = JSON.stringify(value, null, i % 3 === 0 ? 2 : undefined);
    const f = write(`r${i}.json`, (i % 5 === 0 ? '\ufeff' : '') + text + (i % 2 ? '\n' : ''));
    for (const chunk of [1, 3, 7, 4096]) t.deepEqual(readJsonTree(f, undefined, chunk), value, `case ${i}, chunks of ${chunk} bytes`);
  }
  // top-level scalars and empty containers
  for (const text of ['1', ' "a" ', '[]', '{}', '{"a": {}, "b": []}', '[[1, [2]], {"c": [3]}]']) {
    t.deepEqual(readJsonTree(write('s.json', text), undefined, 2), JSON.parse(text), text);
  }
});

test('readJsonTree refuses duplicate keys and bad syntax, naming the file and the path', (t) => {
  const dup = (text: string, re: RegExp): void => {
    const f = write('d.json', text);
    t.throws(() => readJsonTree(f, undefined, 5), { instanceOf: DuplicateKeyError, message: re }, text);
  };
  dup('{"a": 1, "a": 2}', /d\.json: duplicate key a /);
  dup('{"train": {"v": 1, "w": 2, "v": 3}}', /duplicate key train\.v /);
  dup('{"train": {"v": {"PP": 1, "PP": 2}}}', /duplicate key train\.v\.PP /);
  dup('{"results": {"v": [{"s": 1, "s": 2}]}}', /duplicate key results\.v\[0\]\.s /);
  const bad = (text: string, re: RegExp): void => {
    t.throws(() => readJsonTree(write('b.json', text), undefined, 4), { instanceOf: SyntaxError, message: re }, text);
  };
  bad('{"a": 1', /b\.json: invalid JSON at byte 7: expected ',' or '}'/);
  bad('{"a": [1, 2}', /b\.json: invalid JSON at byte 11: expected ',' or '\]' in a$/);
  bad('{"a": {"b": [1, 2}}', /b\.json: invalid JSON in a\.b \(bytes 12-18\)/);
  bad('{"a": 1} x', /unexpected data after the JSON value/);
  bad('{a: 1}', /expected a key/);
  bad('{"a" 1}', /expected ':' after the key "a"/);
  bad('{"t": {"v": tru}}', /invalid JSON in t\.v/);
  bad('', /invalid JSON in the file/);
  // "__proto__" is an own key, as JSON.parse makes it
  const p = readJsonTree(write('p.json', '{"__proto__": {"x": 1}, "y": {"__proto__": 2}}'), undefined, 3) as Record<string, unknown>;
  t.deepEqual(Object.keys(p), ['__proto__', 'y']);
  t.is(Object.getPrototypeOf(p), Object.prototype);
});

test('readJsonFile hands each member two levels down to the reviver, small file or large', (t) => {
  const value = { version: 'x', results: { a: [1, 2], b: [3] }, extra: [[4], [5, 6]] };
  const f = write('m.json', JSON.stringify(value));
  const seen: string[][] = [];
  const revive = (p: (string | number)[], v: unknown): unknown => {
    seen.push(p.map(String));
    return Array.isArray(v) ? v.length : v;
  };
  const small = readJsonFile(f, revive);
  const prev = setJsonTreeThreshold(0);
  try {
    const large = readJsonFile(f, revive);
    t.deepEqual(large, small);
  } finally {
    setJsonTreeThreshold(prev);
  }
  t.deepEqual(small, { version: 'x', results: { a: 2, b: 1 }, extra: [1, 2] });
  t.deepEqual(seen.slice(0, 4), [['results', 'a'], ['results', 'b'], ['extra', '0'], ['extra', '1']]);
  t.deepEqual(seen.slice(4), seen.slice(0, 4));
});

test('AtomicFileWriter: a failure mid-stream leaves the previous file and no temporary file', (t) => {
  const f = write('w.json', 'old');
  const w = new AtomicFileWriter(f);
  w.write('{"a":');
  let writes = 0;
  setWriteHook((op) => {
    if (op === 'write' && ++writes === 2) throw fsError('ENOSPC', 'write');
  });
  try {
    w.write('1,');
    t.throws(() => w.write('"b":2}'), { message: /w\.json: cannot write: ENOSPC: no space left on device/ });
  } finally {
    setWriteHook(null);
  }
  t.is(fs.readFileSync(f, 'utf8'), 'old');
  t.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.w.json')), []);
  const w2 = new AtomicFileWriter(f);
  w2.write('{"a":1,');
  w2.write('"b":2}');
  t.is(fs.readFileSync(f, 'utf8'), 'old', 'not visible before commit');
  w2.commit();
  t.deepEqual(JSON.parse(fs.readFileSync(f, 'utf8')), { a: 1, b: 2 });
});

test('writeJsonFileAtomic streams JSON.stringify(value) chunk by chunk; a failure part-way leaves the previous file', (t) => {
  // 6 MB of text: more than one ~4 MB chunk, so the failure below falls between two writes
  const value = { version: 'VERSION 1.3', results: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`v${i}`, Array.from({ length: 40 }, (_, j) => ({ label: 'x', score: (i * 40 + j) / 7, segment: [j, j + 1.5] }))])) };
  const f = write('r.json', 'old');
  let writes = 0;
  setWriteHook((op) => {
    if (op === 'write') writes++;
    if (op === 'write' && writes === 2) throw fsError('ENOSPC', 'write');
  });
  try {
    t.throws(() => writeJsonFileAtomic(f, value), { message: /r\.json: cannot write: ENOSPC/ });
  } finally {
    setWriteHook(null);
  }
  t.is(fs.readFileSync(f, 'utf8'), 'old');
  t.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.r.json')), []);
  writes = 0;
  setWriteHook((op) => void (op === 'write' && writes++));
  try {
    writeJsonFileAtomic(f, value);
  } finally {
    setWriteHook(null);
  }
  t.true(writes >= 2, `written in ${writes} chunks`);
  t.is(fs.readFileSync(f, 'utf8'), JSON.stringify(value));
});

test('proposals.json is read packed, the same above and below the size threshold, and gives the same stage-2 inputs', (t) => {
  const file = {
    units: { PP: 'seconds', RP: 'seconds', NP: 'snippets' },
    train: {
      v1: { PP: { A: [[0.5, 2.25, 0.9], [1, 3, 0.1]], B: [[4, 5, 0.3]] }, RP: { A: [[0.5, 2.25, 0.9], null] }, NP: [[7, 9, -0.5]] },
      v2: { PP: {}, RP: {}, NP: [] },
    },
    test: { t1: { PP: { B: [[0, 1.28, 0.7]] } } },
  };
  const f = write('proposals.json', JSON.stringify(file));
  const small = readProposals(f);
  const prev = setJsonTreeThreshold(0);
  let large;
  try {
    large = readProposals(f);
  } finally {
    setJsonTreeThreshold(prev);
  }
  t.deepEqual(large, small);
  t.deepEqual([...small.train.v1.PP.A], [0.5, 2.25, 0.9, 1, 3, 0.1]);
  t.deepEqual([...small.train.v1.NP], [7, 9, -0.5]);
  const sps = 25 / 16;
  const ins = trainingProposals(small.train.v1, sps);
  // PP in snippets rounded to 3 decimals, then NP as written; targets from RP
  t.deepEqual([...ins.proposals], [0.781, 3.516, 1.563, 4.688, 6.25, 7.813, 7, 9].map(Math.fround));
  t.deepEqual([...ins.targets], [0.781, 3.516].map(Math.fround));
  const tp = testProposals(small.test.t1.PP, ['A', 'B'], sps);
  t.deepEqual([...tp.proposals], [0, 2].map(Math.fround));
  t.deepEqual([...tp.classIndex], [1]);
  t.deepEqual([...tp.score], [Math.fround(0.7)]);
  // a bad span still names its field, on either path
  const badFile = write('bad-proposals.json', JSON.stringify({ train: { v: { PP: { A: [[2, 1, 0.5]] } } }, test: {} }));
  const msg = /bad-proposals\.json: field train\.v\.PP\.A\[0\] must be a span with start <= end/;
  t.throws(() => readProposals(badFile), { message: msg });
  setJsonTreeThreshold(0);
  try {
    t.throws(() => readProposals(badFile), { message: msg });
  } finally {
    setJsonTreeThreshold(prev);
  }
});
