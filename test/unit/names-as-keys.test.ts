/**
 * Names from data (videos, classes, subsets, option names, config keys, dtypes) used as keys are
 * own keys of Maps or null-prototype records, never Object.prototype's members: `__proto__`,
 * `constructor`, `toString` are names like any other (test/e2e/hostile-names.test.ts runs the whole
 * pipeline on such names). And the readers of detections and base proposals are strict about types:
 * a score or a segment given as a string is an error naming the file and the field.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { evaluateDetection, GroundTruth, Segment } from '../../lib/eval/detection';
import type { DetectionResults } from '../../lib/formats/results';
import { readResults } from '../../lib/formats/results';
import { emptyRecord } from '../../lib/formats/text';
import { groundTruthOf } from '../../lib/models/hrpro/videos';
import { scoreResults } from '../../lib/models/hrpro/evaluate';
import { checkBaseProposal, readBaseProposals } from '../../lib/models/tspnet/proposals';
import { parseArgs, CliError } from '../../lib/cli/args';
import { EVAL_OPTIONS } from '../../lib/cli/eval';
import { main as cliMain } from '../../lib/cli/index';
import { loadConfig } from '../../lib/data/config';
import { simulatePoints } from '../../lib/data/points';
import { synthesizeDataset } from '../../lib/data/synth';
import { readNpy } from '../../lib/data/npy';
import { softNms } from '../../lib/postprocess';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-names-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const write = (name: string, text: string | Buffer): string => {
  const f = path.join(tmp, `${n++}-${name}`);
  fs.writeFileSync(f, text);
  return f;
};
const HOSTILE = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];

// ---- the evaluator and the test passes' records ----------------------------------------------------

test('evaluateDetection: a results record built as {} does not hand a video "constructor" Object.prototype.constructor', (t) => {
  const videos = emptyRecord<Segment[]>();
  for (const v of HOSTILE) videos[v] = [{ label: 'A', segment: [1, 3] }];
  const gt: GroundTruth = { classes: ['A'], videos };
  // only __proto__ and toString have detections (own keys, as JSON.parse makes them); constructor,
  // hasOwnProperty and valueOf have none: the old lookup found Object.prototype's functions
  const results = JSON.parse('{"__proto__": [{"label": "A", "score": 0.9, "segment": [1, 3]}], "toString": [{"label": "A", "score": 0.8, "segment": [1, 3]}]}') as DetectionResults;
  const r = evaluateDetection(gt, results, { tiou: [0.5] });
  t.is(r.numDetections, 2);
  t.is(r.numGroundTruth, 5);
  // two hits of five instances ranked first: AP = (1 + 1) / 5
  t.true(Math.abs(r.map[0] - 0.4) < 1e-12, String(r.map[0]));
  t.deepEqual(Object.keys(r.apPerClass), ['A']);
});

test('the test passes\' ground truth and kept detections: a video named __proto__ is kept and scored', (t) => {
  const video = (name: string) => ({ name, T: 1, D: 1, features: new Float32Array(1), videoLabel: new Float32Array(1), points: [], gt: [{ label: '__proto__', segment: [1, 3] as [number, number] }] });
  const videos = HOSTILE.map(video);
  const gt = groundTruthOf(videos, ['__proto__']);
  t.deepEqual(Object.keys(gt.videos), HOSTILE);
  t.deepEqual(gt.classes, ['__proto__']);
  const results = emptyRecord<{ label: string; score: number; segment: [number, number] }[]>();
  for (const v of HOSTILE) results[v] = [{ label: '__proto__', score: 0.5, segment: [1, 3] }];
  const r = scoreResults(results, videos, ['__proto__'], [0.5]);
  t.is(r.numDetections, HOSTILE.length);
  t.is(r.map[0], 1);
});

// ---- results files: strict types --------------------------------------------------------------------

const resultsFile = (dets: unknown): string => write('results.json', JSON.stringify({ version: 'VERSION 1.3', results: { v1: dets } }));

test('results: a score or a segment given as a string, a reversed segment, a label not a string: errors naming the file and field', (t) => {
  const cases: [unknown, RegExp][] = [
    [[{ label: 'A', score: '0.9', segment: [1, 2] }], /results\.v1\[0\]\.score: expected a finite number, received "0\.9"/],
    [[{ label: 'A', score: 0.9, segment: ['1', 2] }], /results\.v1\[0\]\.segment: expected two finite numbers, received \["1",2\]/],
    [[{ label: 'A', score: 0.9, segment: '1,2' }], /results\.v1\[0\]\.segment: expected \[start, end\]/],
    [[{ label: 'A', score: 0.9, segment: [3, 2] }], /results\.v1\[0\]\.segment: \[3, 2\] is reversed/],
    [[{ label: 'A', score: 0.5, segment: [1, 2] }, { label: 7, score: 0.9, segment: [1, 2] }], /results\.v1\[1\]\.label: expected a string, received 7/],
    [[{ label: 'A', score: null, segment: [1, 2] }], /results\.v1\[0\]\.score: expected a finite number, received null/],
    [{ label: 'A', score: 0.9, segment: [1, 2] }, /results\.v1: expected an array of detections/],
  ];
  for (const [dets, message] of cases) {
    const f = resultsFile(dets);
    const e = t.throws(() => readResults(f), undefined, JSON.stringify(dets));
    t.true(e!.message.includes(f), e!.message);
    t.regex(e!.message, message);
  }
  t.deepEqual(readResults(resultsFile([{ label: 'A', score: 0.9, segment: [1, 2] }])).v1, [{ label: 'A', score: 0.9, segment: [1, 2] }]);
});

test('results: videos named __proto__, constructor, toString are own keys of the record read', (t) => {
  const text = `{"results": {${HOSTILE.map((v, i) => `${JSON.stringify(v)}: [{"label": "__proto__", "score": ${i / 10}, "segment": [0, 1]}]`).join(', ')}}}`;
  const r = readResults(write('hostile-results.json', text));
  t.deepEqual(Object.keys(r), HOSTILE);
  t.is(Object.getPrototypeOf(r), null);
  t.is(r.__proto__[0].label, '__proto__');
  t.is(r['constructor'][0].score, 0.1);
});

// ---- TSPNet base proposals --------------------------------------------------------------------------

const timeBase = { featureFps: 25, snippetFrames: 16 };
const split = HOSTILE.map((name) => ({ name, T: 20, duration: 12.8 }));
const proposalsFile = (results: Record<string, unknown>): string => write('proposals.json', JSON.stringify({ results }));
const good = (): Record<string, unknown> => Object.fromEntries(HOSTILE.map((v) => [v, [{ segment: [1, 2], label: 'A', score: 0.5 }]]));

test('base proposals: videos named __proto__, constructor, toString are read; one left out of the file is named missing', (t) => {
  const got = readBaseProposals(proposalsFile(good()), split, ['A'], timeBase);
  t.deepEqual([...got.keys()], HOSTILE);
  for (const name of ['constructor', '__proto__', 'toString']) {
    const r = good();
    delete r[name];
    // Object.prototype has "constructor", "__proto__" and "toString": the old lookup found those
    t.throws(() => readBaseProposals(proposalsFile(r), split, ['A'], timeBase), { message: new RegExp(`no proposals for 1 video\\(s\\) of the split \\(${name}\\)`) });
  }
});

test('base proposals: strict types (score and label as given, segment numbers), errors naming the file and entry', (t) => {
  const cases: [unknown, RegExp][] = [
    [{ segment: [1, 2], score: '0.9' }, /results\["constructor"\]\[0\]: score must be a finite number, received "0\.9"/],
    [{ segment: ['1', 2] }, /results\["constructor"\]\[0\]: segment must be \[start, end\] in seconds, received \["1",2\]/],
    [{ segment: [1, 2], label: 3 }, /results\["constructor"\]\[0\]: label 3 is not a class of the dataset/],
    [{ segment: [1, 2], label: 'constructor' }, /label 'constructor' is not a class of the dataset/],
    [[1, 2], /results\["constructor"\]\[0\]: expected a proposal \{"segment": \[start, end\]\}, received \[1,2\]/],
  ];
  for (const [q, message] of cases) {
    const r = good();
    const video: string = 'constructor';
    r[video] = [q];
    const f = proposalsFile(r);
    const e = t.throws(() => readBaseProposals(f, split, ['A'], timeBase), undefined, JSON.stringify(q));
    t.true(e!.message.startsWith(f), e!.message);
    t.regex(e!.message, message);
  }
  // the check pstal detect --proposals uses: no video end known, start >= 0
  t.throws(() => checkBaseProposal({ segment: [-1, 2] }, 'p.json: results["v"][0]', new Set()), { message: /p\.json: results\["v"\]\[0\]: segment \[-1, 2\] lies outside the video/ });
  t.throws(() => checkBaseProposal({ segment: [2, 1] }, 'p.json: results["v"][0]', new Set()), { message: /is reversed/ });
  t.deepEqual(checkBaseProposal({ segment: [0, 1e4] }, 'w', new Set()), { segment: [0, 1e4] });
});

// ---- option names, command names, config keys -----------------------------------------------------------

test('options and commands: --constructor, --toString, --__proto__ are unknown options; "pstal constructor" an unknown command', async (t) => {
  const base = ['--gt', 'g.json', '--pred', 'p.json', '--subset', 'Test'];
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'])
    for (const arg of [[`--${name}`, 'x'], [`--${name}=x`], [`--${name}`]]) {
      const e = t.throws(() => parseArgs('eval', [...base, ...arg], EVAL_OPTIONS), { instanceOf: CliError }, arg.join(' '));
      t.regex(e!.message, new RegExp(`^unknown option --${name}\\n`));
    }
  const err = console.error;
  const said: string[] = [];
  console.error = (s: string) => said.push(s);
  try {
    for (const cmd of ['constructor', 'toString', '__proto__']) t.is(await cliMain([cmd]), 2, cmd);
  } finally {
    console.error = err;
  }
  t.true(said.every((s) => /^pstal: unknown command '/.test(s)), said.join('\n'));
});

test('config: "constructor", "toString" and "__proto__" keys are unknown fields, in the file and in overrides', (t) => {
  const gtea = fs.readFileSync(path.join(__dirname, '..', '..', 'configs', 'gtea.yaml'), 'utf8');
  for (const [text, message] of [
    [`${gtea}\nconstructor: 1\n`, /unknown field "constructor"/],
    [`${gtea}\ntoString: x\n`, /unknown field "toString"/],
    [`${gtea}\n__proto__: {lr: 1}\n`, /unknown field "__proto__"/],
    [gtea.replace('stage2:\n', 'stage2:\n  valueOf: 3\n'), /unknown field "stage2\.valueOf"/],
    [gtea.replace('stage1:\n', 'stage1:\n  __proto__: {iterations: 5}\n'), /unknown field "stage1\.__proto__"/],
  ] as const) {
    const f = write('config.yaml', text);
    t.throws(() => loadConfig(f), { message: message }, text.slice(-60));
  }
  t.is(loadConfig(write('config.yaml', gtea)).stage1.iterations, 1000);
  // overrides: named, not applied to Object.prototype or dropped
  for (const [o, message] of [
    [{ 'stage1.__proto__': { iterations: 5 } }, /unknown field "stage1\.__proto__"/],
    [{ 'stage1.constructor': 5 }, /unknown field "stage1\.constructor"/],
    [{ stage2: JSON.parse('{"__proto__": {"epochs": 2}}') }, /unknown field "stage2\.__proto__"/],
    [JSON.parse('{"__proto__": {"name": "x"}}'), /unknown field "__proto__"/],
    [{ toString: 'x' }, /unknown field "toString"/],
  ] as const) t.throws(() => loadConfig('gtea', o as never), { message: message }, JSON.stringify(o));
});

// ---- data: subsets, dtypes, knobs, soft-NMS methods --------------------------------------------------------

test('pstal points: a subset named __proto__ or constructor is counted', (t) => {
  const gt = { database: Object.fromEntries([['a', '__proto__'], ['b', 'constructor'], ['c', 'constructor']].map(([v, s]) => [v, { subset: s, duration: 10, fps: 30, annotations: [{ label: 'toString', segment: [1, 2] }] }])) };
  const r = simulatePoints(write('gt.json', JSON.stringify(gt)));
  t.deepEqual(Object.entries(r.subsets), [['__proto__', 1], ['constructor', 2]]);
  t.deepEqual(r.classes, ['toString']);
  t.is(r.points.length, 3);
});

test('.npy: a dtype named "constructor" or "toString" is refused, not looked up on Object.prototype', (t) => {
  // a version 1.0 file by hand: magic, version, header length, the header dict padded to 64 bytes, 4 floats
  const npy = (descr: string): Buffer => {
    let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (2, 2), }`;
    header = header.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 11) + '\n';
    const len = Buffer.alloc(2);
    len.writeUInt16LE(header.length);
    return Buffer.concat([Buffer.from('\x93NUMPY', 'latin1'), Buffer.from([1, 0]), len, Buffer.from(header, 'latin1'), Buffer.from(Float32Array.of(1, 2, 3, 4).buffer)]);
  };
  t.deepEqual([...readNpy(write('x.npy', npy('<f4'))).data], [1, 2, 3, 4]);
  for (const dtype of ['constructor', 'toString', '__proto__']) {
    const f = write('x.npy', npy(dtype));
    t.throws(() => readNpy(f), { message: new RegExp(`dtype '${dtype}': only float32, float16 and float64 are read`) }, dtype);
  }
});

test('synth knobs and soft-NMS methods named "constructor" or "toString" are refused', async (t) => {
  for (const knob of ['constructor', 'toString'])
    await t.throwsAsync(synthesizeDataset({ out: path.join(tmp, 'synth'), dim: 4, videos: 2, knobs: { [knob]: 1 } as never }), { message: `synth: unknown knob '${knob}'` });
  for (const method of ['constructor', 'toString', '__proto__'])
    t.throws(() => softNms([{ classIndex: 0, score: 1, start: 0, end: 1 }], { method: method as never }), { message: new RegExp(`method must be 'gaussian', 'linear' or 'hard', received ${method}`) });
});
