import test from 'ava';
import { matchPoints, seedRuns, sampleNegatives, rankVideo, groupByClass, Span } from '../../lib/models/hrpro/ranking';
import { predictClasses } from '../../lib/models/hrpro/inference';
import { Rng } from '../../lib/util/rng';

const NAMES = ['A', 'B'];

test('RP: the best positive candidate between the neighbouring points wins over a better one crossing them', (t) => {
  // points: A at 5 s, B at 9 s, A at 20 s
  const pp: Record<string, Span[]> = {
    A: [
      [3, 12, 0.9], // contains 5 s but crosses the next point (9 s): bounded match refuses it
      [4, 7, 0.4], // inside (-1, 9): the RP of the first A point
      [4, 6, 0.3],
      [18, 25, -0.1], // contains 20 s, but a non-positive score never qualifies
    ],
    B: [[8, 10, 0.2]],
  };
  const rp = matchPoints(pp, [
    { time: 20, classIndex: 0 },
    { time: 5, classIndex: 0 },
    { time: 9, classIndex: 1 },
  ], NAMES);
  t.deepEqual(rp.A, [[4, 7, 0.4], null]);
  t.deepEqual(rp.B, [[8, 10, 0.2]]);
});

test('RP: without a bounded candidate the best containing one is taken', (t) => {
  const pp: Record<string, Span[]> = { A: [[0, 30, 0.5], [1, 29, 0.7]] };
  const rp = matchPoints(pp, [{ time: 5, classIndex: 0 }, { time: 10, classIndex: 0 }], NAMES);
  t.deepEqual(rp.A, [[1, 29, 0.7], [1, 29, 0.7]]);
});

test('RP: equal scores keep the first candidate (strictly greater replaces)', (t) => {
  const pp: Record<string, Span[]> = { A: [[4, 6, 0.5], [3, 7, 0.5]] };
  t.deepEqual(matchPoints(pp, [{ time: 5, classIndex: 0 }], NAMES).A, [[4, 6, 0.5]]);
});

test('seedRuns groups consecutive background snippets', (t) => {
  t.deepEqual(seedRuns([1, 1, 0, 1, 0, 0, 1, 1, 1]), [[0, 1], [3, 3], [6, 8]]);
  t.deepEqual(seedRuns([0, 0]), []);
  t.deepEqual(seedRuns([1]), [[0, 0]]);
});

test('NP: one-snippet runs give [s, s+1, -1]; longer runs give sub-spans with normalised negative scores', (t) => {
  const rng = new Rng(3);
  const single = sampleNegatives([[4, 4]], 5, rng);
  t.deepEqual(single, Array(5).fill([4, 5, -1]));
  const spans = sampleNegatives([[10, 20]], 200, rng);
  t.is(spans.length, 200);
  for (const [s, e, score] of spans) {
    t.true(s >= 10 && e <= 20 && s < e && Number.isInteger(s) && Number.isInteger(e));
    t.true(Math.abs(score + (e - s) / 10) < 1e-12);
  }
});

test('NP: a run that can never yield a span ends after the bounded draws instead of looping', (t) => {
  // [a, a+1]: start = floor(U(a, a+1)) = a and end = floor(U(a, a+1)) = a, never start < end
  const spans = sampleNegatives([[7, 8]], 10, new Rng(1), 500);
  t.deepEqual(spans, []);
});

test('rankVideo: PP grouped by class name in candidate order, NP half of |PP|', (t) => {
  const cands = [
    { classIndex: 1, score: 0.3, start: 1, end: 2 },
    { classIndex: 0, score: 0.6, start: 3, end: 5 },
    { classIndex: 1, score: 0.1, start: 1.5, end: 2.5 },
    { classIndex: 0, score: 0.2, start: 3.5, end: 4 },
  ];
  t.deepEqual(groupByClass(cands, NAMES), { B: [[1, 2, 0.3], [1.5, 2.5, 0.1]], A: [[3, 5, 0.6], [3.5, 4, 0.2]] });
  const bkg = new Float32Array([1, 0, 0, 0, 0, 0, 1]);
  const r = rankVideo(cands, [{ time: 4, classIndex: 0 }], bkg, NAMES, new Rng(0));
  t.is(r.NP.length, 2);
  t.deepEqual(r.RP, { A: [[3, 5, 0.6]] });
});

test('predictClasses: threshold, else the argmax alone', (t) => {
  t.deepEqual(predictClasses(new Float32Array([0.2, 0.7, 0.5]), 0.5), [1, 2]);
  t.deepEqual(predictClasses(new Float32Array([0.2, 0.4, 0.1]), 0.5), [1]);
});
