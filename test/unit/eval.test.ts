/**
 * Evaluation (lib/eval, SPEC section 6): APs computed by hand on small cases, the reference's
 * matching rules (duplicates, videos without gt, classes without predictions, blocked videos),
 * deterministic ties, the THUMOS14 ambiguous filter, parsing and errors, the CLI, the real
 * THUMOS14 ground truth scored against itself, and parity with the reference evaluator through a
 * fixture made by scripts/eval-parity.py.
 */
import test from 'ava';
import { sharedDataDir, withSharedData } from '../helpers/shared-data';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  Detection,
  DetectionResults,
  GroundTruth,
  Segment,
  THUMOS14_BLOCKED,
  evaluateDetection,
  filterAmbiguous,
  formatMapTable,
  loadAmbiguous,
  loadGroundTruth,
  loadResults,
  parseTiou,
  roundHalfEven,
  tiou,
} from '../../lib/eval';
import { main as evalMain } from '../../lib/cli/eval';

const close = (a: number, b: number, eps = 1e-12) => Math.abs(a - b) <= eps;

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-eval-'));
}

function det(label: string, score: number, s: number, e: number): Detection {
  return { label, score, segment: [s, e] };
}

/** one class A; video v1 with gt [0,10] and [20,30] */
function gtTwo(): GroundTruth {
  return {
    classes: ['A'],
    videos: { v1: [{ label: 'A', segment: [0, 10] }, { label: 'A', segment: [20, 30] }], v2: [] },
    knownVideos: ['v1', 'v2'],
  };
}

test('tiou: intersection over union, clipped; disjoint and empty cases', (t) => {
  t.is(tiou([0, 10], [5, 15]), 5 / 15);
  t.is(tiou([0, 10], [0, 10]), 1);
  t.is(tiou([0, 10], [20, 30]), 0);
  t.is(tiou([0, 10], [10, 20]), 0);
  t.is(tiou([3, 3], [3, 3]), 0); // zero union: 0, not NaN
  t.is(tiou([0, 5], [0, 10]), 0.5);
});

test('tiou by hand: partial overlap either way round, containment, fractions', (t) => {
  // [2, 6] and [4, 10]: intersection [4, 6] = 2, union [2, 10] = 8 -> 1/4
  t.is(tiou([2, 6], [4, 10]), 0.25);
  t.is(tiou([4, 10], [2, 6]), 0.25);
  // [1, 9] inside [0, 10]: 8 / 10
  t.is(tiou([1, 9], [0, 10]), 0.8);
  t.is(tiou([0, 10], [1, 9]), 0.8);
  // [0, 3] and [1, 4]: intersection 2, union 4 -> 1/2 (len1 + len2 = 6 would give 1/3)
  t.is(tiou([0, 3], [1, 4]), 0.5);
  // [0.5, 2.5] and [1.5, 4.5]: intersection 1, union 4 -> 1/4
  t.is(tiou([0.5, 2.5], [1.5, 4.5]), 0.25);
  // an empty interval inside another: intersection 0 -> 0
  t.is(tiou([5, 5], [0, 10]), 0);
});

test('AP by hand: TP, FP, TP over 2 gt', (t) => {
  // ranks: d1 .9 TP, d2 .8 FP, d3 .7 TP; cumulative TP 1,1,2
  // precision 1/1, 1/2, 2/3; recall 1/2, 1/2, 1
  // precision made monotone from the right: 1, 2/3, 2/3
  // AP = (1/2 - 0) * 1 + (1 - 1/2) * 2/3 = 1/2 + 1/3 = 5/6
  const r = evaluateDetection(gtTwo(), { v1: [det('A', 0.9, 0, 10), det('A', 0.8, 50, 60), det('A', 0.7, 20, 30)] }, { tiou: [0.5] });
  t.true(close(r.apPerClass.A[0], 5 / 6));
  t.true(close(r.map[0], 5 / 6));
  t.is(r.numGroundTruth, 2);
  t.is(r.numDetections, 3);
});

test('a second detection of an already matched gt is a false positive', (t) => {
  // d2 [0,9] has tIoU 0.9 with the gt [0,10] that d1 already took: FP -> same curve as above, 5/6.
  const withDup = evaluateDetection(gtTwo(), { v1: [det('A', 0.9, 0, 10), det('A', 0.8, 0, 9), det('A', 0.7, 20, 30)] }, { tiou: [0.5] });
  t.true(close(withDup.map[0], 5 / 6));
  // without the duplicate: TP, TP -> precision 1, 1; recall 1/2, 1 -> AP 1
  const noDup = evaluateDetection(gtTwo(), { v1: [det('A', 0.9, 0, 10), det('A', 0.7, 20, 30)] }, { tiou: [0.5] });
  t.true(close(noDup.map[0], 1));
});

test('a detection takes the unmatched gt of highest tIoU', (t) => {
  // gt g1 [0,10], g2 [4,14]; d1 .9 [4,14] must take g2 (tIoU 1) not g1 (tIoU 6/14);
  // then d2 .8 [0,10] takes g1: TP, TP -> AP 1. (Taking the first gt would leave d2 without one.)
  const gt: GroundTruth = { classes: ['A'], videos: { v: [{ label: 'A', segment: [0, 10] }, { label: 'A', segment: [4, 14] }] } };
  const r = evaluateDetection(gt, { v: [det('A', 0.9, 4, 14), det('A', 0.8, 0, 10)] }, { tiou: [0.3] });
  t.true(close(r.map[0], 1));
  // once g2 is taken, a detection overlapping g2 best falls back to g1 if g1 passes the threshold:
  // d1 .9 [4,14] -> g2; d2 .8 [3,13] (tIoU 7/13 with g1 ... 9/11 with g2 locked) -> g1 at 0.5
  const r2 = evaluateDetection(gt, { v: [det('A', 0.9, 4, 14), det('A', 0.8, 3, 13)] }, { tiou: [0.5, 0.6] });
  t.true(close(r2.map[0], 1)); // 7/13 = 0.538 >= 0.5: TP, TP
  // at 0.6: TP then FP -> precision 1, 1/2; recall 1/2, 1/2 -> AP 1/2
  t.true(close(r2.map[1], 0.5));
});

test('detections in videos without gt (or of another subset) are false positives', (t) => {
  // v2 has no annotations: .95 FP first, then TP, FP, TP
  // cumulative TP 0,1,1,2; precision 0, 1/2, 1/3, 1/2; recall 0, 1/2, 1/2, 1
  // monotone precision from the right: 1/2, 1/2, 1/2, 1/2
  // AP = (1/2)(1/2) + (1/2)(1/2) = 1/2
  const res: DetectionResults = {
    v1: [det('A', 0.9, 0, 10), det('A', 0.8, 50, 60), det('A', 0.7, 20, 30)],
    v2: [det('A', 0.95, 0, 10)],
  };
  const r = evaluateDetection(gtTwo(), res, { tiou: [0.5] });
  t.true(close(r.map[0], 0.5));
  // a video outside the subset that the gt file knows (knownVideos) counts the same way
  const gt = { ...gtTwo(), knownVideos: ['v1', 'v2', 'val1'] };
  const r2 = evaluateDetection(gt, { v1: res.v1, val1: res.v2 }, { tiou: [0.5] });
  t.true(close(r2.map[0], 0.5));
});

test('classes without predictions have AP 0 and count in the mean', (t) => {
  const gt: GroundTruth = {
    classes: ['A', 'B'],
    videos: { v: [{ label: 'A', segment: [0, 10] }, { label: 'B', segment: [20, 30] }] },
  };
  const r = evaluateDetection(gt, { v: [det('A', 0.5, 0, 10)] }, { tiou: [0.1, 0.5] });
  t.deepEqual(r.apPerClass, { A: [1, 1], B: [0, 0] });
  t.deepEqual(r.map, [0.5, 0.5]);
  // no predictions at all
  const empty = evaluateDetection(gt, {}, { tiou: [0.5] });
  t.deepEqual(empty.map, [0]);
  t.is(empty.numDetections, 0);
  t.is(empty.averages.all, 0);
});

test('several thresholds at once', (t) => {
  // d1 .9 [0,5]: tIoU 1/2 with g1 [0,10]; d2 .8 [20,28]: tIoU 8/10 with g2 [20,30]
  // 0.3, 0.5: TP, TP -> 1;  0.6: FP, TP -> precision 0, 1/2; recall 0, 1/2 -> AP 1/2*1/2 = 1/4;
  // 0.9: FP, FP -> 0
  const r = evaluateDetection(gtTwo(), { v1: [det('A', 0.9, 0, 5), det('A', 0.8, 20, 28)] }, { tiou: [0.3, 0.5, 0.6, 0.9] });
  t.deepEqual(r.map, [1, 1, 0.25, 0]);
  t.is(r.averages.all, (1 + 1 + 0.25) / 4);
  t.is(r.averages['0.1:0.7'], undefined);
});

test('averages over 0.1:0.7, 0.1:0.5 and 0.3:0.7 when those thresholds are present', (t) => {
  const r = evaluateDetection(gtTwo(), { v1: [det('A', 0.9, 0, 5), det('A', 0.8, 20, 28)] }, { tiou: parseTiou('0.1:0.7:0.1') });
  // map: 0.1..0.5 -> 1; 0.6, 0.7 -> 1/4 (see above; 0.8 >= 0.7)
  t.deepEqual(r.map, [1, 1, 1, 1, 1, 0.25, 0.25]);
  t.true(close(r.averages['0.1:0.7']!, 5.5 / 7));
  t.true(close(r.averages['0.1:0.5']!, 1));
  t.true(close(r.averages['0.3:0.7']!, 3.5 / 5));
  t.true(close(r.averages.all, 5.5 / 7));
  const table = formatMapTable(r);
  t.regex(table, /\| +@0\.1 \|/);
  t.regex(table, /avg@\(0\.1:0\.7\)/);
  t.regex(table, /\| +100\.00 \|/);
  t.regex(table, / 78\.57 \|$/m); // 5.5 / 7 = 78.571..%
});

test('ties in score: by video id, then input order, whatever the key order', (t) => {
  const gt: GroundTruth = { classes: ['A'], videos: { a: [], b: [{ label: 'A', segment: [0, 10] }] } };
  // equal scores: video 'a' (FP) ranks before 'b' (TP): precision 0, 1/2; recall 0, 1 -> AP 1/2
  const r1 = evaluateDetection(gt, { a: [det('A', 0.5, 0, 10)], b: [det('A', 0.5, 0, 10)] }, { tiou: [0.5] });
  const r2 = evaluateDetection(gt, { b: [det('A', 0.5, 0, 10)], a: [det('A', 0.5, 0, 10)] }, { tiou: [0.5] });
  t.is(r1.map[0], 0.5);
  t.is(r2.map[0], 0.5);
  // inside one video, input order: FP first -> 1/2; TP first -> 1
  const fpFirst = evaluateDetection(gt, { b: [det('A', 0.5, 30, 40), det('A', 0.5, 0, 10)] }, { tiou: [0.5] });
  const tpFirst = evaluateDetection(gt, { b: [det('A', 0.5, 0, 10), det('A', 0.5, 30, 40)] }, { tiou: [0.5] });
  t.is(fpFirst.map[0], 0.5);
  t.is(tpFirst.map[0], 1);
});

test('blocked videos: their gt and their detections are left out', (t) => {
  const dir = tmpDir();
  const gtFile = path.join(dir, 'gt.json');
  fs.writeFileSync(
    gtFile,
    JSON.stringify({
      database: {
        v1: { subset: 'Test', annotations: [{ label: 'A', segment: [0, 10] }] },
        blk: { subset: 'Test', annotations: [{ label: 'A', segment: [0, 10] }, { label: 'B', segment: [0, 5] }] },
        tr: { subset: 'Validation', annotations: [{ label: 'C', segment: [0, 10] }] },
      },
    }),
  );
  const gt = loadGroundTruth(gtFile, 'Test', { blockedVideos: ['blk'] });
  t.deepEqual(gt.classes, ['A']); // B occurs only in the blocked video; C only in another subset
  t.deepEqual(Object.keys(gt.videos), ['v1']);
  // without blocking: 2 gt of A (one missed) and B with no prediction -> mAP (1/2 + 0) / 2
  const res = { v1: [det('A', 0.9, 0, 10)], blk: [det('A', 0.99, 50, 60)] };
  const r = evaluateDetection(gt, res, { tiou: [0.5] });
  t.is(r.map[0], 1);
  t.is(r.numGroundTruth, 1);
  t.is(r.numDetections, 1);
  const open = evaluateDetection(loadGroundTruth(gtFile, 'Test'), res, { tiou: [0.5] });
  // A: .99 FP then .9 TP -> precision 0, 1/2; recall 0, 1/2 -> AP 1/4; B: 0 -> mAP 1/8
  t.is(open.map[0], 0.125);
  t.is(open.numGroundTruth, 3);
  t.deepEqual(THUMOS14_BLOCKED, ['video_test_0000270', 'video_test_0001292', 'video_test_0001496']);
});

test('unknown labels and videos: error listing them, or ignored with checkUnknown false', (t) => {
  const gt = gtTwo();
  const e1 = t.throws(() => evaluateDetection(gt, { v1: [det('Z', 0.5, 0, 1), det('Y', 0.4, 0, 1)] }))!;
  t.regex(e1.message, /labels not in the ground-truth classes: "Z", "Y" \(2 in all\)/);
  const many: DetectionResults = {};
  for (let i = 0; i < 12; i++) many[`ghost${i}`] = [det('A', 0.5, 0, 1)];
  const e2 = t.throws(() => evaluateDetection(gt, many))!;
  t.regex(e2.message, /videos not in the ground truth: "ghost0", .*"ghost9", \.\.\. \(12 in all\)/);
  // lenient: unknown labels dropped, unknown videos scored as false positives
  const r = evaluateDetection(gt, { v1: [det('A', 0.9, 0, 10), det('Z', 0.95, 0, 10)], ghost: [det('A', 0.1, 0, 1)] }, { tiou: [0.5], checkUnknown: false });
  // ranks: .9 TP, .1 FP; precision 1, 1/2; recall 1/2, 1/2 -> AP 1/2
  t.is(r.map[0], 0.5);
  t.is(r.numDetections, 2);
});

test('file errors name the file and the field', (t) => {
  const dir = tmpDir();
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '{"results": {');
  t.throws(() => loadResults(bad), { message: new RegExp(`results ${bad.replace(/[.\\]/g, '\\$&')}: malformed JSON`) });
  const noField = path.join(dir, 'nofield.json');
  fs.writeFileSync(noField, '{"res": {}}');
  t.throws(() => loadResults(noField), { message: /nofield\.json: missing object field 'results'/ });
  const badScore = path.join(dir, 'score.json');
  fs.writeFileSync(badScore, JSON.stringify({ results: { v: [{ label: 'A', score: 0.5, segment: [0, 1] }, { label: 'A', score: null, segment: [0, 1] }] } }));
  t.throws(() => loadResults(badScore), { message: /score\.json: results\.v\[1\]\.score: expected a finite number/ });
  const badSeg = path.join(dir, 'seg.json');
  fs.writeFileSync(badSeg, JSON.stringify({ results: { v: [{ label: 'A', score: 0.5, segment: [0] }] } }));
  t.throws(() => loadResults(badSeg), { message: /seg\.json: results\.v\[0\]\.segment/ });
  t.throws(() => loadGroundTruth(path.join(dir, 'missing.json'), 'Test'), { message: /ground-truth file not found: .*missing\.json/ });
  const gtBad = path.join(dir, 'gt.json');
  fs.writeFileSync(gtBad, JSON.stringify({ database: { v: { subset: 'Test', annotations: [{ label: 3, segment: [0, 1] }] } } }));
  t.throws(() => loadGroundTruth(gtBad, 'Test'), { message: /gt\.json: video "v": field "annotations\[0\]\.label"/ });
  const gtOk = path.join(dir, 'gt2.json');
  fs.writeFileSync(gtOk, JSON.stringify({ database: { v: { subset: 'Test', annotations: [] } } }));
  t.throws(() => loadGroundTruth(gtOk, 'test'), { message: /no video in subset 'test' \(subsets: Test\)/ });
  // strict types: a score or a segment given as a string is an error naming the field, not a number
  const strScore = path.join(dir, 'str.json');
  fs.writeFileSync(strScore, JSON.stringify({ results: { v: [{ label: 'A', score: '0.25', segment: [1, 2] }] } }));
  t.throws(() => loadResults(strScore), { message: /str\.json: results\.v\[0\]\.score: expected a finite number, received "0\.25"/ });
  const strSeg = path.join(dir, 'strseg.json');
  fs.writeFileSync(strSeg, JSON.stringify({ results: { v: [{ label: 'A', score: 0.25, segment: ['1', 2] }] } }));
  t.throws(() => loadResults(strSeg), { message: /strseg\.json: results\.v\[0\]\.segment: expected two finite numbers/ });
});

test('parseTiou: ranges with inclusive stop, lists, errors', (t) => {
  t.deepEqual(parseTiou('0.1:0.7:0.1'), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
  const anet = parseTiou('0.5:0.95:0.05');
  t.is(anet.length, 10);
  t.is(anet[9], 0.95);
  t.is(anet[3], 0.65);
  t.deepEqual(parseTiou('0.3, 0.5,0.7'), [0.3, 0.5, 0.7]);
  t.deepEqual(parseTiou('0.5'), [0.5]);
  t.throws(() => parseTiou('0.1:0.7'), { message: /start:stop:step/ });
  t.throws(() => parseTiou('0.1:0.7:0'), { message: /step must be positive/ });
  t.throws(() => parseTiou('a,0.5'), { message: /'a' is not a number/ });
  t.throws(() => parseTiou('1.5'), { message: /outside \(0, 1\]/ });
  t.throws(() => parseTiou('0.7:0.1:0.1'), { message: /stop is below start/ });
});

test("roundHalfEven is Python's round", (t) => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [-2.5, -2], [2.4999, 2], [2.5000001, 3], [7, 7], [12.5, 12], [13.5, 14]];
  for (const [x, want] of cases) t.is(roundHalfEven(x) + 0, want, `round(${x})`);
});

test('ambiguous filter: whole seconds, int() truncation, banker rounding', (t) => {
  const amb = new Map<string, [number, number][]>([['v', [[10.5, 12.5]]]]);
  // ambiguous seconds: range(round(10.5), round(12.5)) = range(10, 12) = {10, 11}
  const dets = [
    det('A', 1, 12.0, 14.0), // {12, 13}: kept (half-up rounding would give {10,11,12} and drop it)
    det('A', 1, 9.9, 10.2), // int -> range(9, 10) = {9}: kept
    det('A', 1, 9.5, 11.0), // {9, 10}: dropped
    det('A', 1, 11.9, 11.99), // range(11, 11) = {}: kept (empty set never overlaps)
    det('A', 1, -0.5, 10.7), // range(0, 10): kept (trunc toward zero; 10 excluded)
    det('A', 1, -0.5, 11.0), // range(0, 11) contains 10: dropped
  ];
  const kept = filterAmbiguous('v', dets, amb);
  t.deepEqual(kept.map((d) => d.segment), [[12, 14], [9.9, 10.2], [11.9, 11.99], [-0.5, 10.7]]);
  t.is(filterAmbiguous('other', dets, amb), dets);
  const amb2 = new Map<string, [number, number][]>([['v', [[11.5, 13.5]]]]); // -> range(12, 14) = {12, 13}
  t.deepEqual(filterAmbiguous('v', [det('A', 1, 13.2, 16), det('A', 1, 14, 15)], amb2).map((d) => d.segment), [[14, 15]]);
});

test('loadAmbiguous: any whitespace, blank lines; a bad line names file and line', (t) => {
  const dir = tmpDir();
  const f = path.join(dir, 'Ambiguous_test.txt');
  fs.writeFileSync(f, 'video_test_0000278  0.0 1.4\nvideo_test_0000278\t95.7 97.2\n\nvideo_test_0000293 50.6   54.6\r\n');
  const m = loadAmbiguous(f);
  t.deepEqual(m.get('video_test_0000278'), [[0, 1.4], [95.7, 97.2]]);
  t.deepEqual(m.get('video_test_0000293'), [[50.6, 54.6]]);
  fs.writeFileSync(f, 'a 1 2\nb 3 4\nc 5 x\n');
  t.throws(() => loadAmbiguous(f), { message: /Ambiguous_test\.txt:3: expected "video start end"/ });
  t.throws(() => loadAmbiguous(path.join(dir, 'nope.txt')), { message: /ambiguous segments not found: .*nope\.txt/ });
});

async function runCli(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => lines.push(a.map(String).join(' '));
  try {
    const code = await evalMain(argv);
    return { code, out: lines.join('\n') };
  } finally {
    console.log = orig;
  }
}

test.serial('CLI: --json prints one object; table and per-class otherwise; --ambiguous and --blocked', async (t) => {
  const dir = tmpDir();
  const gtFile = path.join(dir, 'gt_full.json');
  const predFile = path.join(dir, 'results.json');
  const ambFile = path.join(dir, 'amb.txt');
  fs.writeFileSync(
    gtFile,
    JSON.stringify({
      database: {
        v1: { subset: 'Test', annotations: [{ label: 'A', segment: [0, 10] }, { label: 'A', segment: [20, 30] }] },
        video_test_0000270: { subset: 'Test', annotations: [{ label: 'A', segment: [0, 10] }] },
      },
    }),
  );
  fs.writeFileSync(
    predFile,
    JSON.stringify({ results: { v1: [det('A', 0.9, 0, 10), det('A', 0.8, 50, 60), det('A', 0.7, 20, 30)], video_test_0000270: [det('A', 0.99, 40, 50)] } }),
  );
  fs.writeFileSync(ambFile, 'v1 50 60\n');
  // default --blocked: the THUMOS14 list since video_test_0000270 is in the subset -> AP 5/6 (see above)
  const j = await runCli(['--gt', gtFile, '--pred', predFile, '--subset', 'Test', '--tiou', '0.5', '--json']);
  t.is(j.code, 0);
  const obj = JSON.parse(j.out);
  t.true(close(obj.map[0], 5 / 6));
  t.is(obj.numGroundTruth, 2);
  t.deepEqual(obj.blockedVideos, THUMOS14_BLOCKED);
  // --blocked none: the extra gt (missed) and the .99 FP count:
  // .99 FP, .9 TP, .8 FP, .7 TP; 3 gt: precision 0, 1/2, 1/3, 1/2; recall 0, 1/3, 1/3, 2/3
  // monotone: 1/2, 1/2, 1/2, 1/2 -> AP = 1/3 * 1/2 + 1/3 * 1/2 = 1/3
  const j2 = JSON.parse((await runCli(['--gt', gtFile, '--pred', predFile, '--subset', 'Test', '--tiou', '0.5', '--json', '--blocked', 'none'])).out);
  t.true(close(j2.map[0], 1 / 3));
  // --ambiguous drops the FP at [50, 60] -> TP, TP -> AP 1
  const j3 = JSON.parse((await runCli(['--gt', gtFile, '--pred', predFile, '--subset', 'Test', '--tiou', '0.5', '--json', '--ambiguous', ambFile])).out);
  t.is(j3.map[0], 1);
  t.is(j3.droppedAmbiguous, 1);
  const table = await runCli(['--gt', gtFile, '--pred', predFile, '--subset', 'Test', '--per-class']);
  t.is(table.code, 0);
  t.regex(table.out, /avg@\(0\.1:0\.7\)/);
  t.regex(table.out, /^A +\| +83\.33/m);
  await t.throwsAsync(runCli(['--gt', gtFile, '--pred', predFile, '--subset', 'Test', '--tiou', '0:1']), { message: /--tiou/ });
  await t.throwsAsync(runCli(['--gt', gtFile, '--subset', 'Test']), { message: /--pred is required/ });
});

const REAL_GT = path.join(sharedDataDir() ?? '', 'THUMOS14', 'gt_full.json');
withSharedData(test)('real THUMOS14 test gt: perfect predictions score mAP 1 at every tIoU', (t) => {
  const dir = tmpDir();
  const gtFile = path.join(dir, 'gt_full.json');
  fs.copyFileSync(REAL_GT, gtFile);
  const gt = loadGroundTruth(gtFile, 'Test', { blockedVideos: THUMOS14_BLOCKED });
  t.is(gt.classes.length, 20);
  t.false('video_test_0000270' in gt.videos);
  const results: DetectionResults = {};
  for (const [v, segs] of Object.entries(gt.videos)) results[v] = segs.map((s) => ({ ...s, score: 1 }));
  const r = evaluateDetection(gt, results, { tiou: parseTiou('0.1:0.7:0.1') });
  for (const m of r.map) t.true(close(m, 1), `mAP ${m}`);
  t.true(r.numGroundTruth > 3000);
  // and shifted predictions lose recall at the high thresholds only
  const shifted: DetectionResults = {};
  for (const [v, segs] of Object.entries(gt.videos))
    shifted[v] = segs.map((s, i) => ({ label: s.label, score: 1 - i * 1e-6, segment: [s.segment[0] + 0.25 * (s.segment[1] - s.segment[0]), s.segment[1]] as [number, number] }));
  const r2 = evaluateDetection(gt, shifted, { tiou: [0.5, 0.7, 0.8] });
  // each shifted prediction has tIoU 0.75 with its own gt
  t.true(close(r2.map[0], 1), `${r2.map[0]}`);
  t.true(close(r2.map[1], 1), `${r2.map[1]}`);
  t.is(r2.map[2], 0);
});

test('parity with the reference evaluator (fixture from scripts/eval-parity.py)', (t) => {
  const fx = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'eval', 'parity.json'), 'utf8'));
  const dir = tmpDir();
  const gtFile = path.join(dir, 'gt.json');
  const predFile = path.join(dir, 'pred.json');
  fs.writeFileSync(gtFile, JSON.stringify(fx.gt));
  fs.writeFileSync(predFile, JSON.stringify(fx.results));
  const gt = loadGroundTruth(gtFile, fx.subset, { blockedVideos: fx.blocked });
  t.deepEqual(gt.classes, fx.expectedClasses);
  const r = evaluateDetection(gt, loadResults(predFile), { tiou: fx.tiou });
  t.is(r.numGroundTruth, fx.numGroundTruth);
  t.is(r.numDetections, fx.numPredictions);
  fx.expectedMap.forEach((m: number, i: number) => t.true(Math.abs(r.map[i] - m) < 1e-6, `mAP@${fx.tiou[i]}: ${r.map[i]} vs ${m}`));
  for (const [c, aps] of Object.entries(fx.expectedApPerClass as Record<string, number[]>))
    aps.forEach((a, i) => t.true(Math.abs(r.apPerClass[c][i] - a) < 1e-9, `${c}@${fx.tiou[i]}`));
});

/**
 * tIoU written here, not lib's: the cross-check below must not share the function it checks.
 * Intersection of [a0, a1] and [b0, b1] clipped at 0, over the length of their union
 * (|a| + |b| - intersection); 0 when that union is empty.
 */
function ownTiou(a: [number, number], b: [number, number]): number {
  const inter = Math.max(0, Math.min(a[1], b[1]) - Math.max(a[0], b[0]));
  const union = a[1] - a[0] + (b[1] - b[0]) - inter;
  return union > 0 ? inter / union : 0;
}

/** A direct, slow transcription of the SPEC section 6 rules, for random cross-checks. */
function naiveMap(gt: GroundTruth, results: DetectionResults, thresholds: number[]): number[] {
  const videos = Object.keys(results).sort();
  return thresholds.map((th) => {
    let sum = 0;
    for (const c of gt.classes) {
      const preds: { v: string; d: Detection; pos: number }[] = [];
      for (const v of videos) results[v].forEach((d, pos) => d.label === c && preds.push({ v, d, pos }));
      preds.sort((a, b) => b.d.score - a.d.score || (a.v < b.v ? -1 : a.v > b.v ? 1 : 0) || a.pos - b.pos);
      const used = new Set<Segment>();
      let npos = 0;
      for (const segs of Object.values(gt.videos)) npos += segs.filter((s) => s.label === c).length;
      let tp = 0;
      const prec: number[] = [];
      const rec: number[] = [];
      preds.forEach((p, i) => {
        const cands = (gt.videos[p.v] ?? []).filter((g) => g.label === c && !used.has(g));
        let best: Segment | undefined;
        let bestIou = -1;
        cands.forEach((g) => {
          const v = ownTiou(p.d.segment, g.segment);
          if (v >= th && v >= bestIou) {
            best = g;
            bestIou = v;
          }
        });
        if (best) {
          used.add(best);
          tp++;
        }
        prec.push(tp / (i + 1));
        rec.push(tp / npos);
      });
      let ap = 0;
      for (let i = 0; i < prec.length; i++) {
        const dr = rec[i] - (i > 0 ? rec[i - 1] : 0);
        if (dr !== 0) ap += dr * Math.max(...prec.slice(i));
      }
      sum += ap;
    }
    return sum / gt.classes.length;
  });
}

test('random cases (ties, negative and zero scores, overlapping gt) agree with a naive transcription', (t) => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let trial = 0; trial < 30; trial++) {
    const classes = ['A', 'B', 'C'];
    const gt: GroundTruth = { classes, videos: {} };
    const results: DetectionResults = {};
    for (let v = 0; v < 6; v++) {
      const name = `v${v}`;
      gt.videos[name] = [];
      for (let k = 0; k < 1 + Math.floor(rand() * 6); k++) {
        const s = Math.round(rand() * 50);
        gt.videos[name].push({ label: classes[Math.floor(rand() * 3)], segment: [s, s + 1 + Math.round(rand() * 10)] });
      }
      results[name] = [];
      for (let k = 0; k < Math.floor(rand() * 15); k++) {
        const s = Math.round(rand() * 50);
        const score = [0, -0, -1.5, 0.5, Math.round(rand() * 4) / 4, rand(), 1e-300][Math.floor(rand() * 7)];
        results[name].push({ label: classes[Math.floor(rand() * 3)], score, segment: [s, s + 1 + Math.round(rand() * 10)] });
      }
    }
    results.extra = [det('A', 0.5, 0, 5)];
    // as loadGroundTruth does: the classes are those present in the gt
    const present = new Set(Object.values(gt.videos).flatMap((s) => s.map((g) => g.label)));
    gt.classes = classes.filter((c) => present.has(c));
    const th = [0.1, 0.3, 0.5, 0.7];
    const got = evaluateDetection(gt, results, { tiou: th, checkUnknown: false }).map;
    const want = naiveMap(gt, results, th);
    got.forEach((g, i) => t.true(Math.abs(g - want[i]) < 1e-12, `trial ${trial} @${th[i]}: ${g} vs ${want[i]}`));
  }
});
