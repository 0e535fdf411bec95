/**
 * Post-processing kernels (lib/postprocess, native/cpu/{proposals,nms,boundary}.cc) against
 * plain float64 TypeScript implementations of the SPEC §2 / §5 definitions written here, on
 * random inputs of several sizes and on edge cases; plus a parity fixture made with
 * numpy/scipy by scripts/postprocess-parity.py.
 */
import test, { ExecutionContext } from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import {
  Proposal,
  boundaryAdaptation,
  defaultProposalOptions,
  defaultThresholds,
  generateProposals,
  numpyArange,
  predictClasses,
  softNms,
  upsampleLinear,
} from '../../lib/postprocess';
import { Rng } from '../../lib/util/rng';

// ------------------------------------------------------------------ inputs

/** Smooth random scores in (0, 1): sigmoid of a few bumps plus noise, float32 [T, C]. */
function smoothScores(rng: Rng, T: number, C: number): Float32Array {
  const x = new Float32Array(T * C);
  for (let c = 0; c < C; c++) {
    const bumps = Array.from({ length: 1 + rng.int(3) }, () => ({ mu: rng.range(0, T), w: rng.range(1, 8), h: rng.range(2, 7) }));
    for (let t = 0; t < T; t++) {
      let logit = -3 + 0.6 * rng.normal();
      for (const b of bumps) logit += b.h * Math.exp(-0.5 * ((t - b.mu) / b.w) ** 2);
      x[t * C + c] = 1 / (1 + Math.exp(-logit));
    }
  }
  return x;
}

// ------------------------------------------------------------------ plain references

/** Linear interpolation by the textbook formula (no attention to rounding). */
function upsamplePlain(x: Float32Array, T: number, C: number, scale: number): Float64Array {
  const L = T * scale;
  const out = new Float64Array(L * C);
  for (let i = 0; i < L; i++) {
    const pos = i / scale;
    for (let c = 0; c < C; c++) {
      if (T === 1) {
        out[i * C + c] = x[c];
        continue;
      }
      const lo = Math.min(Math.floor(pos), T - 2);
      out[i * C + c] = x[lo * C + c] + (pos - lo) * (x[(lo + 1) * C + c] - x[lo * C + c]);
    }
  }
  return out;
}

/** scipy interp1d's arithmetic: float32 difference, then diff * (pos - lo) + y[lo] in float64. */
function upsampleScipy(x: Float32Array, T: number, C: number, scale: number): Float64Array {
  const L = T * scale;
  const out = new Float64Array(L * C);
  for (let i = 0; i < L; i++) {
    const pos = i * (1 / scale);
    for (let c = 0; c < C; c++) {
      if (T === 1) {
        out[i * C + c] = x[c];
        continue;
      }
      const k = Math.min(Math.max(Math.ceil(pos), 1), T - 1);
      const diff = Math.fround(x[k * C + c] - x[(k - 1) * C + c]);
      out[i * C + c] = diff * (pos - (k - 1)) + x[(k - 1) * C + c];
    }
  }
  return out;
}

const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;

/** SPEC §2 candidate proposals, written as directly as possible. */
function proposalsRef(
  cas: Float32Array, agnostic: Float32Array, T: number, C: number, classes: number[], vid: Float32Array,
  o: { cas: number[]; agnostic: number[]; lambda: number; gamma: number; scale: number; sps: number },
): Proposal[] {
  const L = T * o.scale;
  const up = upsampleScipy(cas, T, C, o.scale);
  const agn = upsampleScipy(agnostic, T, 1, o.scale);
  const step = o.sps / o.scale;
  const out: Proposal[] = [];
  const emit = (inRun: (i: number) => boolean, seq: (i: number) => number, c: number): void => {
    for (let i = 0; i < L; i++) {
      if (!inRun(i) || (i > 0 && inRun(i - 1))) continue;
      let b = i;
      while (b + 1 < L && inRun(b + 1)) b++;
      const n = b - i + 1;
      const inside: number[] = [];
      for (let j = i; j <= b; j++) inside.push(seq(j));
      const band: number[] = [];
      for (let j = Math.max(0, Math.trunc(i - o.lambda * n)); j < i; j++) band.push(seq(j));
      for (let j = b + 1; j <= Math.min(L - 1, Math.trunc(b + o.lambda * n)); j++) band.push(seq(j));
      const outer = band.length ? mean(band) : 0;
      out.push({ classIndex: c, score: mean(inside) - outer + o.gamma * vid[c], start: i * step, end: (b + 1) * step });
    }
  };
  for (const thr of o.cas) {
    for (const c of classes) {
      const v = (i: number): number => (up[i * C + c] < thr ? 0 : up[i * C + c]);
      emit((i) => v(i) > 0, v, c);
    }
  }
  for (const thr of o.agnostic) {
    for (const c of classes) emit((i) => agn[i] >= thr && agn[i] > 0, (i) => up[i * C + c], c);
  }
  return out;
}

/** The reference's soft-NMS loop on one list: argmax (first), swap with the head, keep, decay. */
function softNmsClassRef(list: Proposal[], sigma: number, plus: number): Proposal[] {
  const d = list.map((p) => ({ ...p }));
  const kept: Proposal[] = [];
  while (d.length) {
    let m = 0;
    for (let i = 1; i < d.length; i++) if (d[i].score > d[m].score) m = i;
    [d[0], d[m]] = [d[m], d[0]];
    const top = d.shift()!;
    kept.push(top);
    for (const r of d) {
      const inter = Math.max(Math.min(top.end, r.end) - Math.max(top.start, r.start) + plus, 0);
      const iou = inter / (top.end - top.start + plus + (r.end - r.start + plus) - inter);
      r.score *= Math.exp(-(iou * iou) / sigma);
    }
  }
  return kept;
}

function softNmsRef(ps: Proposal[], sigma = 0.3, plus = 1): Proposal[] {
  const order: number[] = [];
  for (const p of ps) if (!order.includes(p.classIndex)) order.push(p.classIndex);
  return order.flatMap((c) => softNmsClassRef(ps.filter((p) => p.classIndex === c), sigma, plus));
}

function iouExact(a: Proposal, b: Proposal): number {
  const inter = Math.max(Math.min(a.end, b.end) - Math.max(a.start, b.start), 0);
  const union = a.end - a.start + (b.end - b.start) - inter;
  return union > 0 ? inter / union : 0;
}

/** SPEC §5 ABA per class, output in input order. */
function abaRef(ps: Proposal[], thr = 0.4): Proposal[] {
  const out = ps.map((p) => ({ ...p }));
  const classes = [...new Set(ps.map((p) => p.classIndex))];
  for (const c of classes) {
    const idx = ps.map((_, i) => i).filter((i) => ps[i].classIndex === c);
    const order = [...idx].sort((a, b) => ps[b].score - ps[a].score || b - a);
    const visited = new Set<number>();
    for (const l of order) {
      if (visited.has(l)) continue;
      const group = idx.filter((j) => (j === l ? 1 : iouExact(ps[l], ps[j])) > thr);
      const ious = group.map((j) => (j === l ? 1 : iouExact(ps[l], ps[j])));
      const isum = ious.reduce((s, v) => s + v, 0);
      const w = group.map((j, g) => ps[j].score * (ious[g] / isum));
      const wsum = w.reduce((s, v) => s + v, 0);
      if (wsum !== 0) {
        out[l].start = group.reduce((s, j, g) => s + ps[j].start * (w[g] / wsum), 0);
        out[l].end = group.reduce((s, j, g) => s + ps[j].end * (w[g] / wsum), 0);
      }
      group.forEach((j) => visited.add(j));
    }
  }
  return out;
}

// ------------------------------------------------------------------ comparison

function sameProposals(t: ExecutionContext, got: Proposal[], want: Proposal[], tol: number, what: string): void {
  t.is(got.length, want.length, `${what}: count`);
  let bad = 0;
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    const g = got[i];
    const w = want[i];
    const ok =
      g.classIndex === w.classIndex &&
      Math.abs(g.start - w.start) <= tol * Math.max(1, Math.abs(w.start)) &&
      Math.abs(g.end - w.end) <= tol * Math.max(1, Math.abs(w.end)) &&
      Math.abs(g.score - w.score) <= tol * Math.max(1, Math.abs(w.score));
    if (!ok && bad++ < 3) t.fail(`${what}[${i}]: got ${JSON.stringify(g)}, want ${JSON.stringify(w)}`);
  }
  t.is(bad, 0, `${what}: mismatching rows`);
}

const refOpts = (scale = 2) => {
  const th = defaultThresholds();
  return { cas: th.cas, agnostic: th.agnostic, lambda: 0.25, gamma: 0, scale, sps: 16 / 25 };
};

// ------------------------------------------------------------------ thresholds

test('defaultThresholds reproduces numpy.arange float64 values', (t) => {
  const th = defaultThresholds();
  // printed by numpy 2.4: np.arange(0.0, 0.25, 0.025).tolist(), np.arange(0.5, 0.725, 0.025).tolist()
  t.deepEqual(th.cas, [0.0, 0.025, 0.05, 0.07500000000000001, 0.1, 0.125, 0.15000000000000002, 0.17500000000000002, 0.2, 0.225]);
  t.deepEqual(th.agnostic, [
    0.5, 0.525, 0.55, 0.5750000000000001, 0.6000000000000001, 0.6250000000000001, 0.6500000000000001, 0.6750000000000002,
    0.7000000000000002,
  ]);
  t.deepEqual(numpyArange(0, 5, 0.5), [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]);
  t.deepEqual(numpyArange(1, 1, 0.1), []);
  t.throws(() => numpyArange(0, 1, 0), { message: /numpyArange: step/ });
});

// ------------------------------------------------------------------ upsampling

for (const [T, C, scale] of [[1, 3, 2], [2, 1, 2], [5, 4, 2], [33, 7, 3], [331, 20, 2]]) {
  test(`upsampleLinear T=${T} C=${C} scale=${scale} vs interpolation formula`, (t) => {
    const rng = new Rng(T * 100 + C);
    const x = smoothScores(rng, T, C);
    const got = upsampleLinear(x, T, C, scale);
    t.true(got instanceof Float64Array);
    t.is(got.length, T * scale * C);
    const plain = upsamplePlain(x, T, C, scale);
    const exact = upsampleScipy(x, T, C, scale);
    for (let i = 0; i < got.length; i++) {
      // the float32 difference costs up to half a float32 ulp of the step
      if (Math.abs(got[i] - plain[i]) > 1e-7) return t.fail(`value ${i}: ${got[i]} vs ${plain[i]}`);
      if (got[i] !== exact[i]) return t.fail(`value ${i}: ${got[i]} vs scipy arithmetic ${exact[i]}`);
    }
    // samples are reproduced at integer positions (up to the float32 difference) and the tail
    // follows the last segment's slope
    if (T >= 2) t.true(Math.abs(got[(T * scale - 1) * C] - (x[(T - 1) * C] + ((scale - 1) / scale) * (x[(T - 1) * C] - x[(T - 2) * C]))) < 1e-7);
    else t.deepEqual(Array.from(got), Array.from({ length: scale }, () => Array.from(x)).flat());
    t.pass();
  });
}

test('upsampleLinear rejects bad shapes naming the op', (t) => {
  t.throws(() => upsampleLinear(new Float32Array(5), 2, 3, 2), { message: /upsampleLinear: x holds 5 values, expected T\*C = 6/ });
  t.throws(() => upsampleLinear(new Float32Array(0), 0, 3, 2), { message: /upsampleLinear: T must be/ });
  t.throws(() => upsampleLinear(new Float32Array(6), 2, 3, 0), { message: /upsampleLinear: scale/ });
  t.throws(() => upsampleLinear([1, 2] as unknown as Float32Array, 2, 1, 2), { message: /upsampleLinear: x must be a Float32Array/ });
});

// ------------------------------------------------------------------ proposals

for (const [T, C, K, seed] of [[1, 2, 1, 1], [2, 3, 2, 2], [17, 5, 2, 3], [120, 20, 3, 4], [330, 20, 2, 5], [900, 8, 1, 6]]) {
  test(`generateProposals T=${T} C=${C} classes=${K} vs plain definition`, (t) => {
    const rng = new Rng(seed);
    const cas = smoothScores(rng, T, C);
    const agnostic = smoothScores(rng, T, 1);
    const vid = Float32Array.from({ length: C }, () => rng.uniform());
    const classes = Array.from({ length: C }, (_, c) => c).sort(() => rng.uniform() - 0.5).slice(0, K);
    for (const gamma of [0, 0.7]) {
      const opts = { ...defaultProposalOptions(), gamma };
      const got = generateProposals(cas, agnostic, T, C, classes, vid, opts);
      const want = proposalsRef(cas, agnostic, T, C, classes, vid, { ...refOpts(), gamma });
      sameProposals(t, got, want, 1e-12, `gamma ${gamma}`);
      if (T > 1) t.true(got.length > 0);
    }
  });
}

test('generateProposals: all above, all below, exact-threshold values, the > 0 rule', (t) => {
  const T = 6;
  const o = { ...defaultProposalOptions(), casThresholds: [0, 0.3], agnosticThresholds: [0.5] };
  // constant 0.3 cas: above/at every threshold -> one run covering everything at each threshold
  const flat = new Float32Array(T).fill(0.3);
  const agnHigh = new Float32Array(T).fill(0.9);
  let got = generateProposals(flat, agnHigh, T, 1, [0], new Float32Array([1]), o);
  t.is(got.length, 3);
  for (const p of got) {
    t.is(p.start, 0);
    t.is(p.end, 2 * T * (0.64 / 2));
    t.true(Math.abs(p.score - Math.fround(0.3)) < 1e-9); // no outer band inside the video
  }
  // 0.3 as float32 is 0.30000001192..., >= the float64 threshold 0.3: kept (>= is inclusive)
  // all below: cas 0 everywhere and agnostic below 0.5 -> nothing (0 is not > 0 at threshold 0)
  got = generateProposals(new Float32Array(T), new Float32Array(T).fill(0.2), T, 1, [0], new Float32Array([1]), o);
  t.deepEqual(got, []);
  // a value exactly equal to the threshold is in (values < thr are zeroed), float32 0.5 == 0.5
  const agnHalf = new Float32Array(T).fill(0.5);
  got = generateProposals(new Float32Array(T), agnHalf, T, 1, [0], new Float32Array([1]), { ...o, casThresholds: [] });
  t.is(got.length, 1);
  t.is(got[0].score, 0);
  // same on the class score: 0.125 is exact in float32 and is the 6th cas threshold
  got = generateProposals(new Float32Array(T).fill(0.125), new Float32Array(T), T, 1, [0], new Float32Array([1]), { ...o, casThresholds: [0.125, 0.15000000000000002], agnosticThresholds: [] });
  t.deepEqual(got.map((p) => p.score), [0.125]);
});

test('generateProposals: one bump gives the expected OIC score and seconds', (t) => {
  // T = 4 snippets, upsampled to 8 steps; cas high on snippets 1..2
  const cas = new Float32Array([0, 1, 1, 0]);
  const o = { ...defaultProposalOptions(), casThresholds: [0.6], agnosticThresholds: [] };
  const got = generateProposals(cas, new Float32Array(4), 4, 1, [0], new Float32Array([0]), o);
  // upsampled: 0, .5, 1, 1, 1, .5, 0, -.5 -> run steps 2..4 (values 1), n = 3, band 0.75 -> trunc(1.25) = 1 .. trunc(4.75) = 4
  // outer band [1, 2) + (4, 4] = step 1 only, thresholded copy value 0 (0.5 < 0.6) -> score 1 - 0 = 1
  t.deepEqual(got, [{ classIndex: 0, score: 1, start: 2 * 0.32, end: 5 * 0.32 }]);
});

test('generateProposals: T = 1 gives constant scores and one run per threshold above it', (t) => {
  const o = defaultProposalOptions();
  const got = generateProposals(new Float32Array([0.12, 0.9]), new Float32Array([0.6]), 1, 2, [0, 1], new Float32Array([0.4, 0.9]), o);
  // class 0: cas thresholds 0 .. 0.1 (5 of them); class 1: all 10; agnostic 0.6 >= 0.5 .. 0.6000000000000001? no:
  // float32 0.6 = 0.60000002384 >= 0.6000000000000001 -> thresholds 0.5 .. 0.6 (5) for each class
  t.is(got.filter((p) => p.classIndex === 0).length, 5 + 5);
  t.is(got.filter((p) => p.classIndex === 1).length, 10 + 5);
  for (const p of got) {
    t.is(p.start, 0);
    t.is(p.end, 0.64);
  }
});

test('generateProposals: order is threshold-major, then class, then time', (t) => {
  const rng = new Rng(9);
  const T = 60;
  const C = 4;
  const cas = smoothScores(rng, T, C);
  const agnostic = smoothScores(rng, T, 1);
  const o = { ...defaultProposalOptions(), casThresholds: [0.1], agnosticThresholds: [0.55] };
  const got = generateProposals(cas, agnostic, T, C, [3, 1], new Float32Array(C), o);
  const a = generateProposals(cas, agnostic, T, C, [3], new Float32Array(C), { ...o, agnosticThresholds: [] });
  const b = generateProposals(cas, agnostic, T, C, [1], new Float32Array(C), { ...o, agnosticThresholds: [] });
  const c = generateProposals(cas, agnostic, T, C, [3], new Float32Array(C), { ...o, casThresholds: [] });
  const d = generateProposals(cas, agnostic, T, C, [1], new Float32Array(C), { ...o, casThresholds: [] });
  t.deepEqual(got, [...a, ...b, ...c, ...d]);
  for (const part of [a, b, c, d]) for (let i = 1; i < part.length; i++) t.true(part[i].start > part[i - 1].start);
});

test('generateProposals: referenceAnyQuirk drops a lone step-0 run only', (t) => {
  // upsampled cas: 1, 0.5, 0, -0.5 ... only step 0 is >= 0.6
  const cas = new Float32Array([1, 0, 0]);
  const o = { ...defaultProposalOptions(), casThresholds: [0.6], agnosticThresholds: [] };
  t.is(generateProposals(cas, new Float32Array(3), 3, 1, [0], new Float32Array(1), o).length, 1);
  t.is(generateProposals(cas, new Float32Array(3), 3, 1, [0], new Float32Array(1), { ...o, referenceAnyQuirk: true }).length, 0);
  // a run 0..1 is kept with the quirk
  t.is(generateProposals(cas, new Float32Array(3), 3, 1, [0], new Float32Array(1), { ...o, casThresholds: [0.4], referenceAnyQuirk: true }).length, 1);
});

test('generateProposals rejects bad input naming the op and field', (t) => {
  const o = defaultProposalOptions();
  const f = (n: number): Float32Array => new Float32Array(n);
  t.throws(() => generateProposals(f(5), f(3), 3, 2, [0], f(2), o), { message: /generateProposals: cas holds 5 values, expected T\*C = 6/ });
  t.throws(() => generateProposals(f(6), f(2), 3, 2, [0], f(2), o), { message: /generateProposals: agnostic holds 2 values/ });
  t.throws(() => generateProposals(f(6), f(3), 3, 2, [0], f(3), o), { message: /generateProposals: vidScore holds 3 values/ });
  t.throws(() => generateProposals(f(6), f(3), 3, 2, [2], f(2), o), { message: /generateProposals: classes\[0\] = 2/ });
  t.throws(() => generateProposals(f(6), f(3), 3, 2, [1, 1], f(2), o), { message: /generateProposals: classes\[1\] = 1 is repeated/ });
  t.throws(() => generateProposals(f(6), f(3), 3, 2, [0], f(2), { ...o, casThresholds: [NaN] }), { message: /generateProposals: options.casThresholds\[0\]/ });
  t.throws(() => generateProposals(f(6), f(3), 3, 2, [0], f(2), { ...o, lambda: -1 }), { message: /generateProposals: options.lambda/ });
  t.throws(() => generateProposals(f(6), f(3), 3, 2, [0], f(2), { ...o, secondsPerSnippet: 0 }), { message: /generateProposals: options.secondsPerSnippet/ });
});

test('predictClasses: >= threshold, else the first argmax', (t) => {
  t.deepEqual(predictClasses(new Float32Array([0.5, 0.2, 0.7])), [0, 2]);
  t.deepEqual(predictClasses([0.1, 0.3, 0.3]), [1]);
  t.deepEqual(predictClasses([0.1, 0.3, 0.3], 0.1), [0, 1, 2]);
  t.throws(() => predictClasses([]), { message: /predictClasses/ });
});

// ------------------------------------------------------------------ soft-NMS

function randomProposals(rng: Rng, n: number, classes: number, duration: number): Proposal[] {
  return Array.from({ length: n }, () => {
    const start = rng.range(0, duration);
    return { classIndex: rng.int(classes), score: rng.uniform(), start, end: start + rng.range(0, duration / 8) };
  });
}

for (const [n, classes] of [[1, 1], [2, 1], [30, 3], [400, 2], [2500, 1]]) {
  test(`softNms n=${n} classes=${classes} vs the reference loop (+1 and exact IoU)`, (t) => {
    const rng = new Rng(n + classes);
    const ps = randomProposals(rng, n, classes, 60);
    sameProposals(t, softNms(ps), softNmsRef(ps), 1e-12, '+1');
    sameProposals(t, softNms(ps, { exactIoU: true, sigma: 0.5 }), softNmsRef(ps, 0.5, 0), 1e-12, 'exact');
  });
}

test('softNms: large classes (threaded path) match the reference loop', (t) => {
  const rng = new Rng(31);
  const ps = randomProposals(rng, 4400, 2, 200);
  sameProposals(t, softNms(ps), softNmsRef(ps), 1e-12, 'threaded');
});

test('softNms on generated proposals of several classes matches the reference loop', (t) => {
  const rng = new Rng(77);
  const T = 330;
  const C = 20;
  const cas = smoothScores(rng, T, C);
  const ps = generateProposals(cas, smoothScores(rng, T, 1), T, C, [5, 2, 17], new Float32Array(C), defaultProposalOptions());
  t.true(ps.length > 100);
  const got = softNms(ps);
  sameProposals(t, got, softNmsRef(ps), 1e-12, 'generated');
  // groups in first-appearance order
  const groupOrder = [...new Set(got.map((p) => p.classIndex))];
  t.deepEqual(groupOrder, [...new Set(ps.map((p) => p.classIndex))]);
});

test('softNms: ties go to the first maximum and the swap reorders the rest', (t) => {
  // far apart so nothing decays; scores [1, 1, 2, 1]: C is taken, swapped with A -> [C, B, A, D]
  const mk = (name: number, score: number): Proposal => ({ classIndex: 0, score, start: name * 100, end: name * 100 + 1 });
  const got = softNms([mk(0, 1), mk(1, 1), mk(2, 2), mk(3, 1)]);
  t.deepEqual(got.map((p) => p.start / 100), [2, 1, 0, 3]);
  // identical boxes and scores: order kept, each later one decayed by exp(-1/0.3) per kept box
  const same = softNms([mk(0, 1), mk(0, 1), mk(0, 1)]);
  t.deepEqual(same.map((p) => p.score), [1, Math.exp(-1 / 0.3), Math.exp(-1 / 0.3) * Math.exp(-1 / 0.3)]);
});

test('softNms: "+1" convention vs exact IoU on touching boxes', (t) => {
  const a: Proposal = { classIndex: 0, score: 1, start: 0, end: 1 };
  const b: Proposal = { classIndex: 0, score: 0.5, start: 1, end: 2 };
  // exact: no overlap; +1: inter 1, lengths 2 each, IoU 1/3
  t.is(softNms([a, b], { exactIoU: true })[1].score, 0.5);
  t.true(Math.abs(softNms([a, b])[1].score - 0.5 * Math.exp(-(1 / 9) / 0.3)) < 1e-15);
  // different classes never interact
  t.is(softNms([a, { ...b, classIndex: 1 }])[1].score, 0.5);
});

test('softNms: linear and hard variants', (t) => {
  const a: Proposal = { classIndex: 0, score: 1, start: 0, end: 10 };
  const b: Proposal = { classIndex: 0, score: 0.5, start: 0, end: 9 };
  const iou = 9 / 10;
  t.true(Math.abs(softNms([a, b], { method: 'linear', exactIoU: true })[1].score - 0.5 * (1 - iou)) < 1e-15);
  t.is(softNms([a, b], { method: 'hard', exactIoU: true })[1].score, 0);
  t.is(softNms([a, b], { method: 'hard', exactIoU: true, iouThreshold: 0.95 })[1].score, 0.5);
});

test('softNms: empty list, single proposal, errors', (t) => {
  t.deepEqual(softNms([]), []);
  const one = { classIndex: 3, score: 0.2, start: 1, end: 2 };
  t.deepEqual(softNms([one]), [one]);
  t.throws(() => softNms([{ ...one, score: NaN }]), { message: /softNms: proposals\[0\].score/ });
  t.throws(() => softNms([{ ...one, end: 0 }]), { message: /softNms: proposals\[0\] ends/ });
  t.throws(() => softNms([{ ...one, classIndex: 1.5 }]), { message: /softNms: proposals\[0\].classIndex/ });
  t.throws(() => softNms([one], { sigma: 0 }), { message: /softNms: sigma/ });
});

// ------------------------------------------------------------------ boundary adaptation

for (const [n, classes] of [[1, 1], [5, 1], [60, 2], [700, 3]]) {
  test(`boundaryAdaptation n=${n} classes=${classes} vs plain definition`, (t) => {
    const rng = new Rng(1000 + n);
    const ps = randomProposals(rng, n, classes, 30);
    sameProposals(t, boundaryAdaptation(ps), abaRef(ps), 1e-12, 'aba 0.4');
    sameProposals(t, boundaryAdaptation(ps, { iouThreshold: 0.2 }), abaRef(ps, 0.2), 1e-12, 'aba 0.2');
  });
}

test('boundaryAdaptation: a worked example', (t) => {
  const ps: Proposal[] = [
    { classIndex: 0, score: 0.9, start: 0, end: 10 },
    { classIndex: 0, score: 0.3, start: 2, end: 10 }, // IoU 0.8 with the leader
    { classIndex: 0, score: 0.5, start: 20, end: 30 }, // alone
    { classIndex: 1, score: 0.1, start: 0, end: 4 }, // other class: not gathered
  ];
  const got = boundaryAdaptation(ps);
  // weights: 0.9 * (1 / 1.8) = 0.5, 0.3 * (0.8 / 1.8) = 0.1333..; normalised 0.789473.., 0.210526..
  const w1 = (0.3 * (0.8 / 1.8)) / (0.9 * (1 / 1.8) + 0.3 * (0.8 / 1.8));
  t.true(Math.abs(got[0].start - 2 * w1) < 1e-12);
  t.is(got[0].end, 10);
  t.deepEqual(got.slice(1), ps.slice(1)); // gathered follower, lone leader and the other class unchanged
  t.deepEqual(got.map((p) => p.score), ps.map((p) => p.score));
});

test('boundaryAdaptation: equal scores visit the later proposal first; zero-length and zero-score leaders', (t) => {
  const a: Proposal = { classIndex: 0, score: 0.5, start: 0, end: 10 };
  const b: Proposal = { classIndex: 0, score: 0.5, start: 5, end: 10 }; // IoU 0.5
  const got = boundaryAdaptation([a, b]);
  t.deepEqual(got[0], a); // b led and gathered a
  t.true(Math.abs(got[1].start - 0.5 * (1 / 1.5) * 0 - 5 * ((0.5 * (1 / 1.5)) / 0.5)) < 1e-12);
  t.deepEqual(boundaryAdaptation([{ classIndex: 0, score: 1, start: 3, end: 3 }]), [{ classIndex: 0, score: 1, start: 3, end: 3 }]);
  const zero = [{ ...a, score: 0 }, { ...b, score: 0 }];
  t.deepEqual(boundaryAdaptation(zero), zero);
  t.deepEqual(boundaryAdaptation([]), []);
  t.throws(() => boundaryAdaptation([a], { iouThreshold: 1 }), { message: /boundaryAdaptation: iouThreshold/ });
  t.throws(() => boundaryAdaptation([{ ...a, start: Infinity }]), { message: /boundaryAdaptation: proposals\[0\].start/ });
});

// ------------------------------------------------------------------ native op errors

test('native ops name themselves in errors', (t) => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { cpu } = require('../../lib/runtime/native');
  t.throws(() => cpu().soft_nms(new Float64Array(3), 0, 0.3, 0.7, true), { message: /soft_nms.*rows must hold/ });
  t.throws(() => cpu().boundary_adaptation(new Float64Array([0, -1, 0, 1]), 0.4), { message: /boundary_adaptation.*ends before/ });
  t.throws(() => cpu().oic_proposals(new Float32Array(2), new Float32Array(2), 2, 1, new Int32Array([0]), new Float32Array(1), new Float64Array(0), new Float64Array(0), 0.25, 0, 2, 0, false), { message: /oic_proposals.*step_seconds/ });
  t.throws(() => cpu().upsample_linear(new Float32Array(2), 2, 2, 2), { message: /upsample_linear.*x holds 2/ });
});

// ------------------------------------------------------------------ numpy/scipy parity

interface ParityVideo {
  T: number; C: number; classes: number[]; cas: number[]; agnostic: number[]; upsampled: number[];
  proposals: number[][]; softNms: number[][];
}
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'postprocess-parity.json'), 'utf8')) as {
  casThresholds: number[]; agnosticThresholds: number[]; videos: ParityVideo[];
};
const rowsToProposals = (rows: number[][]): Proposal[] => rows.map(([start, end, classIndex, score]) => ({ classIndex, score, start, end }));

test('parity with numpy/scipy (scripts/postprocess-parity.py): bit-identical upsampling and proposals', (t) => {
  const th = defaultThresholds();
  t.deepEqual(fixture.casThresholds, th.cas);
  t.deepEqual(fixture.agnosticThresholds, th.agnostic);
  for (const v of fixture.videos) {
    const cas = Float32Array.from(v.cas);
    const agnostic = Float32Array.from(v.agnostic);
    t.deepEqual(Array.from(upsampleLinear(cas, v.T, v.C, 2)), v.upsampled, `upsample T=${v.T}`);
    const got = generateProposals(cas, agnostic, v.T, v.C, v.classes, new Float32Array(v.C), defaultProposalOptions());
    sameProposals(t, got, rowsToProposals(v.proposals), 0, `proposals T=${v.T}`);
    sameProposals(t, softNms(got), rowsToProposals(v.softNms), 1e-13, `softNms T=${v.T}`);
  }
});
