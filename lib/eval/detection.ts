/**
 * Temporal action detection evaluation: mAP at tIoU thresholds under the ActivityNet detection
 * protocol as HR-Pro / TSPNet use it (SPEC section 6; blocked THUMOS14 videos: SPEC section 1).
 *
 * Behaviour matched to the reference evaluator (ANETdetection):
 * - the classes are the labels that occur in the ground truth of the chosen subset (after dropping
 *   blocked videos), in order of first appearance; mAP averages over exactly those classes, and a
 *   class without predictions has AP 0;
 * - predictions are NOT restricted to the subset: a prediction for a video with no ground truth of
 *   its class (another subset, or a video without annotations) is a false positive;
 * - detections in blocked videos are dropped before scoring;
 * - matching: per class, predictions by decreasing score; for each threshold a prediction takes the
 *   unmatched ground truth of its video with the highest tIoU, provided that tIoU >= threshold,
 *   otherwise it is a false positive;
 * - AP: VOC-2011 interpolation (precision made monotone from the right, summed over recall changes).
 *
 * Where the reference's order is undefined we fix one (documented on evaluateDetection).
 */
import { readGroundTruth, GroundTruthFile, MAX_SEGMENT_SECONDS } from '../formats/ground_truth';
import { LIMITS } from '../util/limits';
import { readResults, Detection, DetectionResults } from '../formats/results';
import { emptyRecord } from '../formats/text';

export { MAX_SEGMENT_SECONDS };
export type { Detection, DetectionResults };

export interface Segment {
  label: string;
  /** [start, end] in seconds */
  segment: [number, number];
}

/** The ground truth of one subset. */
export interface GroundTruth {
  /** the classes mAP averages over (labels present in this subset), in order of first appearance */
  classes: string[];
  /** video id -> annotated segments, for every (non-blocked) video of the subset (a null-prototype record) */
  videos: Record<string, Segment[]>;
  /** every video id of the ground-truth file, any subset (for the unknown-video check) */
  knownVideos?: string[];
  /** videos excluded from evaluation: their ground truth is absent and their detections are dropped */
  blockedVideos?: string[];
}

/** Three THUMOS14 test videos excluded from evaluation by the references (SPEC §1). */
export const THUMOS14_BLOCKED: string[] = ['video_test_0000270', 'video_test_0001292', 'video_test_0001496'];

/**
 * tIoU of two intervals: intersection (clipped at 0) over union. Computed in the same order of
 * operations as the reference so that values landing exactly on a threshold compare the same way.
 * A zero union (two empty intervals) gives 0 rather than NaN.
 */
export function tiou(a: [number, number], b: [number, number]): number {
  return tiouRaw(a[0], a[1], b[0], b[1]);
}

function tiouRaw(ps: number, pe: number, gs: number, ge: number): number {
  const lo = ps > gs ? ps : gs;
  const hi = pe < ge ? pe : ge;
  const inter = hi - lo > 0 ? hi - lo : 0;
  const union = ge - gs + (pe - ps) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * The ground truth of `subset`, minus `blockedVideos`, from a parsed gt_full.json. Its segments must
 * start at 0 or later and not be reversed (the evaluator refuses what `pstal check` only lists).
 */
export function subsetGroundTruth(gt: GroundTruthFile, subset: string, opts: { blockedVideos?: string[]; file?: string } = {}): GroundTruth {
  const file = opts.file ?? 'gt_full.json';
  const blocked = new Set(opts.blockedVideos ?? []);
  const classes: string[] = [];
  const seen = new Set<string>();
  const videos = emptyRecord<Segment[]>();
  const subsets = new Set<string>();
  for (const [video, v] of gt) {
    subsets.add(v.subset);
    if (v.subset !== subset || blocked.has(video)) continue;
    videos[video] = v.annotations.map((a, i) => {
      const [s, e] = a.segment;
      const where = `ground truth ${file}: video "${video}": annotations[${i}].segment`;
      if (s > e) throw new Error(`${where}: [${s}, ${e}] is reversed (its start is after its end)`);
      if (s < 0) throw new Error(`${where}: [${s}, ${e}] starts before 0 s`);
      if (!seen.has(a.label)) {
        seen.add(a.label);
        classes.push(a.label);
      }
      return { label: a.label, segment: [s, e] };
    });
  }
  if (!subsets.has(subset)) throw new Error(`ground truth ${file}: no video in subset '${subset}' (subsets: ${[...subsets].join(', ')})`);
  return { classes, videos, knownVideos: [...gt.keys()], blockedVideos: [...blocked] };
}

/** Reads a gt_full.json and keeps the videos of `subset`, minus `blockedVideos`. */
export function loadGroundTruth(gtFile: string, subset: string, opts: { blockedVideos?: string[] } = {}): GroundTruth {
  return subsetGroundTruth(readGroundTruth(gtFile), subset, { ...opts, file: gtFile });
}

/** Reads a results file ({"results": {video: [{label, score, segment}]}}): lib/formats/results.ts. */
export const loadResults = readResults;

/** An evaluation as plain data (what `pstal eval --json` and `pstal test --json` print). */
export function evaluationJson(r: EvalResult): Pick<EvalResult, 'tiou' | 'map' | 'averages' | 'apPerClass' | 'numGroundTruth' | 'numDetections'> {
  return { tiou: r.tiou, map: r.map, averages: r.averages, apPerClass: r.apPerClass, numGroundTruth: r.numGroundTruth, numDetections: r.numDetections };
}

export interface EvalOptions {
  /** tIoU thresholds; default 0.1..0.7 step 0.1 (THUMOS14) */
  tiou?: number[];
  /** error on labels outside gt.classes and videos absent from the ground-truth file (default true) */
  checkUnknown?: boolean;
}

export interface EvalResult {
  tiou: number[];
  /** mAP per threshold, in [0, 1] */
  map: number[];
  /** class -> AP per threshold */
  apPerClass: Record<string, number[]>;
  /** means of map over the thresholds inside each range (present only when all its thresholds are) */
  averages: { '0.1:0.7'?: number; '0.1:0.5'?: number; '0.3:0.7'?: number; all: number };
  numGroundTruth: number;
  numDetections: number;
}

export const DEFAULT_TIOU: number[] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];

function listSome(xs: string[]): string {
  const head = xs.slice(0, 10).map((x) => JSON.stringify(x)).join(', ');
  return xs.length > 10 ? `${head}, ... (${xs.length} in all)` : `${head} (${xs.length} in all)`;
}

/**
 * VOC-2011 interpolated AP of one precision/recall curve, given as cumulative TP counts at each
 * rank (tp[i] = true positives among the first i+1 predictions) and the number of positives.
 * Precision is made monotone from the right (with a final 0), then summed over every rank where
 * recall changes: sum (rec[i] - rec[i-1]) * maxprec[i..end].
 */
function interpolatedAp(tpCum: Float64Array, n: number, npos: number): number {
  if (n === 0 || npos <= 0) return 0;
  // walk from the right keeping the running max of precision; add the area wherever recall rises
  // relative to the previous rank (recall at rank -1 is 0).
  let maxPrec = 0;
  let ap = 0;
  for (let i = n - 1; i >= 0; i--) {
    const prec = tpCum[i] / (i + 1);
    if (prec > maxPrec) maxPrec = prec;
    const rec = tpCum[i] / npos;
    const prev = i > 0 ? tpCum[i - 1] / npos : 0;
    if (rec !== prev) ap += (rec - prev) * maxPrec;
  }
  return ap;
}

/**
 * Scores `results` against `gt` and returns AP per class and mAP per threshold.
 *
 * Order rules where the reference (numpy argsort, unstable) leaves the order undefined:
 * - predictions with equal scores are ranked by video id (ascending, code-unit order), then by their
 *   position in the input (video's list order) -- so the result never depends on object key order
 *   beyond the per-video lists themselves;
 * - ground truths of one video with equal tIoU to a prediction: the later one in the file is taken
 *   first (what the reference's reversed argsort does for small arrays).
 */
export function evaluateDetection(gt: GroundTruth, results: DetectionResults, opts: EvalOptions = {}): EvalResult {
  const thresholds = opts.tiou ?? DEFAULT_TIOU;
  const checkUnknown = opts.checkUnknown ?? true;
  const T = thresholds.length;
  if (T === 0) throw new Error('evaluateDetection: no tIoU thresholds');
  for (const t of thresholds) if (!Number.isFinite(t)) throw new Error(`evaluateDetection: bad tIoU threshold ${t}`);
  const C = gt.classes.length;
  const classIndex = new Map<string, number>();
  gt.classes.forEach((c, i) => classIndex.set(c, i));
  const blocked = new Set(gt.blockedVideos ?? []);

  // --- checks of unknown labels / videos
  if (checkUnknown) {
    const badLabels = new Set<string>();
    const badVideos: string[] = [];
    const known = gt.knownVideos ? new Set(gt.knownVideos) : null;
    for (const [video, dets] of Object.entries(results)) {
      if (blocked.has(video)) continue;
      if (known ? !known.has(video) : false) badVideos.push(video);
      for (const d of dets) if (!classIndex.has(d.label)) badLabels.add(d.label);
    }
    const msgs: string[] = [];
    if (badLabels.size) msgs.push(`labels not in the ground-truth classes: ${listSome([...badLabels])}`);
    if (badVideos.length) msgs.push(`videos not in the ground truth: ${listSome(badVideos)}`);
    if (msgs.length) throw new Error(`evaluateDetection: ${msgs.join('; ')}`);
  }

  // --- video indices in sorted id order (so a video-index comparison is the video-id tie rule)
  const videoSet = new Set<string>(Object.keys(gt.videos));
  for (const v of Object.keys(results)) if (!blocked.has(v)) videoSet.add(v);
  const videoNames = [...videoSet].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const V = videoNames.length;
  const videoIndex = new Map<string, number>();
  videoNames.forEach((v, i) => videoIndex.set(v, i));

  // --- ground truth grouped by (class, video), file order kept inside a group (CSR layout)
  const gtCount = new Int32Array(C * V + 1);
  let G = 0;
  for (const [video, segs] of Object.entries(gt.videos)) {
    if (blocked.has(video)) continue;
    const vi = videoIndex.get(video)!;
    for (const s of segs) {
      const c = classIndex.get(s.label);
      if (c === undefined) continue; // cannot happen for a loaded gt; be lenient with hand-built ones
      gtCount[c * V + vi + 1]++;
      G++;
    }
  }
  const gtOff = new Int32Array(C * V + 1);
  for (let k = 1; k <= C * V; k++) gtOff[k] = gtOff[k - 1] + gtCount[k];
  const gtStart = new Float64Array(G);
  const gtEnd = new Float64Array(G);
  const fill = gtOff.slice(0, C * V);
  const npos = new Float64Array(C);
  for (const [video, segs] of Object.entries(gt.videos)) {
    if (blocked.has(video)) continue;
    const vi = videoIndex.get(video)!;
    for (const s of segs) {
      const c = classIndex.get(s.label);
      if (c === undefined) continue;
      const k = fill[c * V + vi]++;
      gtStart[k] = s.segment[0];
      gtEnd[k] = s.segment[1];
      npos[c]++;
    }
  }

  // --- detections flattened into typed arrays, grouped by class
  let N = 0;
  for (const [video, dets] of Object.entries(results)) if (!blocked.has(video)) N += dets.length;
  const dStart = new Float64Array(N);
  const dEnd = new Float64Array(N);
  const dScore = new Float64Array(N);
  const dVideo = new Int32Array(N);
  const dClass = new Int32Array(N);
  const perClass = new Int32Array(C + 1);
  let n = 0;
  // iterate videos in sorted order so that flat index order = (video id, position) order
  for (const video of videoNames) {
    // own keys only: a results record built as {} must not hand back Object.prototype's "constructor"
    const dets = Object.hasOwn(results, video) ? results[video] : undefined;
    if (!dets) continue;
    const vi = videoIndex.get(video)!;
    for (const d of dets) {
      const c = classIndex.get(d.label);
      if (c === undefined) continue; // unknown label with checkUnknown off: cannot score, dropped
      dStart[n] = d.segment[0];
      dEnd[n] = d.segment[1];
      if (!Number.isFinite(d.score)) throw new Error(`evaluateDetection: ${video}: detection score ${d.score} is not a finite number`);
      dScore[n] = d.score + 0; // -0 -> +0, so that the radix keys of equal scores are equal
      dVideo[n] = vi;
      dClass[n] = c;
      perClass[c + 1]++;
      n++;
    }
  }
  N = n;
  for (let c = 0; c < C; c++) perClass[c + 1] += perClass[c];
  // score descending, ties in flat index order (= video id, then input position): a stable radix
  // sort on the scores, then a stable counting sort by class
  const byScore = sortByScoreDescending(dScore, N);
  const order = new Int32Array(N);
  const cfill = perClass.slice(0, C);
  for (let k = 0; k < N; k++) {
    const i = byScore[k];
    order[cfill[dClass[i]]++] = i;
  }
  // gathered in ranking order so the hot loop reads memory sequentially
  const sStart = new Float64Array(N);
  const sEnd = new Float64Array(N);
  const sVideo = new Int32Array(N);
  for (let k = 0; k < N; k++) {
    const i = order[k];
    sStart[k] = dStart[i];
    sEnd[k] = dEnd[i];
    sVideo[k] = dVideo[i];
  }

  // --- matching
  const lock = new Uint8Array(T * G); // lock[t * G + g] = gt g already matched at threshold t
  const tpCum = new Float64Array(T * Math.max(N, 1));
  let maxGroup = 0;
  for (let k = 0; k < C * V; k++) maxGroup = Math.max(maxGroup, gtOff[k + 1] - gtOff[k]);
  // per detection, the gt of its (class, video) that could match at some threshold (tIoU >= the
  // smallest threshold), with their tIoUs: the per-threshold scans then touch only those few
  const candIou = new Float64Array(maxGroup);
  const candGt = new Int32Array(maxGroup);
  let minThr = Infinity;
  for (const th of thresholds) if (th < minThr) minThr = th;
  const apPerClass = emptyRecord<number[]>();
  const map = new Array<number>(T).fill(0);
  const thr = Float64Array.from(thresholds);

  for (let c = 0; c < C; c++) {
    const lo = perClass[c];
    const m = perClass[c + 1] - lo;
    const running = new Float64Array(T);
    for (let r = 0; r < m; r++) {
      const k0 = lo + r;
      const g0 = gtOff[c * V + sVideo[k0]];
      const g1 = gtOff[c * V + sVideo[k0] + 1];
      const ps = sStart[k0];
      const pe = sEnd[k0];
      let nc = 0;
      for (let g = g0; g < g1; g++) {
        const v = tiouRaw(ps, pe, gtStart[g], gtEnd[g]);
        if (v >= minThr) {
          candIou[nc] = v;
          candGt[nc++] = g;
        }
      }
      for (let t = 0; t < T; t++) {
        const th = thr[t];
        const base = t * G;
        let best = -1;
        let bestIou = -Infinity;
        // ascending gt order with >=: among equal tIoUs the later gt wins (see the doc comment)
        for (let k = 0; k < nc; k++) {
          const v = candIou[k];
          if (v >= th && v >= bestIou && lock[base + candGt[k]] === 0) {
            best = candGt[k];
            bestIou = v;
          }
        }
        if (best >= 0) {
          lock[base + best] = 1;
          running[t]++;
        }
        tpCum[t * N + r] = running[t];
      }
    }
    const aps = new Array<number>(T);
    for (let t = 0; t < T; t++) {
      aps[t] = interpolatedAp(tpCum.subarray(t * N, t * N + m), m, npos[c]);
    }
    apPerClass[gt.classes[c]] = aps;
  }
  // mAP = plain mean over the classes of the subset
  for (let t = 0; t < T; t++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += apPerClass[gt.classes[c]][t];
    map[t] = C > 0 ? s / C : 0;
  }

  return { tiou: [...thresholds], map, apPerClass, averages: averagesOf(thresholds, map), numGroundTruth: G, numDetections: N };
}

/**
 * Indices 0..n-1 ordered by score descending; equal scores keep ascending index order. LSD radix
 * sort (4 passes of 16 bits) on the float64 bit patterns mapped to unsigned keys whose ascending
 * order is descending score; stability of every pass gives the index tie order.
 */
function sortByScoreDescending(score: Float64Array, n: number): Int32Array {
  const bits = new Uint32Array(score.buffer, score.byteOffset, 2 * n); // little-endian: [lo, hi]
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let h = bits[2 * i + 1];
    let l = bits[2 * i];
    // ascending-order key: negative -> flip all bits, positive -> flip the sign bit; then invert
    // everything for descending order
    if (h & 0x80000000) {
      h = ~h;
      l = ~l;
    } else h ^= 0x80000000;
    hi[i] = ~h >>> 0;
    lo[i] = ~l >>> 0;
  }
  if (n === 0) return new Int32Array(0);
  let idx = new Int32Array(n);
  let tmp = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const count = new Int32Array(65537);
  for (let pass = 0; pass < 4; pass++) {
    const word = pass < 2 ? lo : hi;
    const shift = (pass & 1) * 16;
    count.fill(0);
    for (let i = 0; i < n; i++) count[((word[i] >>> shift) & 0xffff) + 1]++;
    if (count[((word[0] >>> shift) & 0xffff) + 1] === n) continue; // one bucket: pass is a no-op
    for (let b = 0; b < 65536; b++) count[b + 1] += count[b];
    for (let k = 0; k < n; k++) {
      const i = idx[k];
      tmp[count[(word[i] >>> shift) & 0xffff]++] = i;
    }
    const t = idx;
    idx = tmp;
    tmp = t;
  }
  return idx;
}

function averagesOf(thresholds: number[], map: number[]): EvalResult['averages'] {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const key = (t: number) => Math.round(t * 1e6);
  const at = new Map<number, number>();
  thresholds.forEach((t, i) => at.set(key(t), map[i]));
  const range = (a: number, b: number): number | undefined => {
    const vals: number[] = [];
    for (let k = Math.round(a * 10); k <= Math.round(b * 10); k++) {
      const v = at.get(key(k / 10));
      if (v === undefined) return undefined;
      vals.push(v);
    }
    return mean(vals);
  };
  const out: EvalResult['averages'] = { all: mean(map) };
  const r17 = range(0.1, 0.7);
  const r15 = range(0.1, 0.5);
  const r37 = range(0.3, 0.7);
  if (r17 !== undefined) out['0.1:0.7'] = r17;
  if (r15 !== undefined) out['0.1:0.5'] = r15;
  if (r37 !== undefined) out['0.3:0.7'] = r37;
  return out;
}

/** One table like the reference's log: mAP@t per threshold, then the averages, in percent. */
export function formatMapTable(r: EvalResult): string {
  const head: string[] = [];
  const row: string[] = [];
  const pct = (x: number) => (100 * x).toFixed(2);
  r.tiou.forEach((t, i) => {
    head.push(`@${fmtT(t)}`);
    row.push(pct(r.map[i]));
  });
  const avgs: [string, number | undefined][] = [
    ['avg@(0.1:0.5)', r.averages['0.1:0.5']],
    ['avg@(0.3:0.7)', r.averages['0.3:0.7']],
    ['avg@(0.1:0.7)', r.averages['0.1:0.7']],
  ];
  for (const [name, v] of avgs)
    if (v !== undefined) {
      head.push(name);
      row.push(pct(v));
    }
  if (r.averages['0.1:0.7'] === undefined) {
    head.push('avg');
    row.push(pct(r.averages.all));
  }
  const w = head.map((h, i) => Math.max(h.length, row[i].length, 6));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(w[i])).join(' | ')} |`;
  const sep = `+${w.map((x) => '-'.repeat(x + 2)).join('+')}+`;
  return [sep, line(head), sep, line(row), sep].join('\n');
}

function fmtT(t: number): string {
  // shortest form that round-trips at 1e-9 (0.1, 0.55, 0.95)
  return String(Math.round(t * 1e9) / 1e9);
}

/**
 * Parses a threshold list: 'start:stop:step' (stop inclusive, values rounded to 1e-9 so float steps
 * such as 0.05 do not drift) or a comma list '0.3,0.5,0.7'. Thresholds must lie in (0, 1].
 */
export function parseTiou(spec: string): number[] {
  const s = spec.trim();
  let out: number[];
  const num = (x: string) => {
    const v = Number(x.trim());
    if (x.trim() === '' || !Number.isFinite(v)) throw new Error(`tIoU spec '${spec}': '${x}' is not a number`);
    return v;
  };
  if (s.includes(':')) {
    const parts = s.split(':');
    if (parts.length !== 3) throw new Error(`tIoU spec '${spec}': expected start:stop:step`);
    const [a, b, st] = parts.map(num);
    if (!(st > 0)) throw new Error(`tIoU spec '${spec}': step must be positive`);
    if (b < a) throw new Error(`tIoU spec '${spec}': stop is below start`);
    const count = Math.floor((b - a) / st + 1e-9) + 1;
    // the bound of every threshold list (lib/util/limits.ts), before the list is made
    if (!(count <= LIMITS.listValues.max)) throw new Error(`tIoU spec '${spec}' gives ${count} thresholds; at most ${LIMITS.listValues.max} are allowed (${LIMITS.listValues.what})`);
    out = [];
    for (let i = 0; i < count; i++) out.push(Math.round((a + i * st) * 1e9) / 1e9);
  } else {
    const parts = s.split(',');
    if (parts.length > LIMITS.listValues.max) throw new Error(`tIoU spec '${spec.slice(0, 40)}...' lists ${parts.length} thresholds; at most ${LIMITS.listValues.max} are allowed (${LIMITS.listValues.what})`);
    out = parts.map(num);
  }
  if (out.length === 0) throw new Error(`tIoU spec '${spec}': no thresholds`);
  for (const t of out) if (!(t > 0 && t <= 1)) throw new Error(`tIoU spec '${spec}': threshold ${t} is outside (0, 1]`);
  return out;
}
