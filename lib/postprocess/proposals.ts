/**
 * proposals.ts: HR-Pro stage-1 candidate proposals (SPEC §2, "Stage-1 inference"), computed by
 * the native ops upsample_linear and oic_proposals (native/cpu/proposals.cc).
 *
 * Semantics (decided against the reference's test code, see the native file for the details):
 * - upsampling is linear at positions i / scale, extrapolating past the last snippet, in float64
 *   (scipy's interp1d returns float64 for float32 input; our arithmetic is bit-identical to it);
 *   a one-snippet video upsamples to a constant.
 * - cas threshold t: a step belongs to a run when its upsampled class score is >= t and > 0
 *   (the reference zeroes values < t, then takes values > 0); OIC means use that zeroed copy.
 * - agnostic threshold t: runs where the upsampled agnostic score is >= t and > 0; OIC means use
 *   the full (not zeroed) upsampled class score.
 * - OIC = mean inside - mean of the outer band (0.25 x length each side, ends truncated toward
 *   zero and clipped; 0 if empty) + gamma x video score; means in numpy's summation order.
 * - start = first step x step seconds, end = (last step + 1) x step seconds, with
 *   step seconds = secondsPerSnippet / scale (the reference's t_factor, identical in float64 for
 *   scale 2).
 * - order: cas thresholds in list order, then agnostic thresholds; within a threshold the
 *   classes in the order given; within a class the runs in time order. This is the order in
 *   which the reference appends to its per-class lists, so soft-NMS ties resolve the same way.
 */
import { cpu } from '../runtime/native';
import { Proposal, fromRows } from './types';
import { defaultThresholds } from './thresholds';

export interface ProposalOptions {
  /** thresholds on the class score (reference: np.arange(0, 0.25, 0.025)) */
  casThresholds: number[];
  /** thresholds on the agnostic score 1 - bkg (reference: np.arange(0.5, 0.725, 0.025)) */
  agnosticThresholds: number[];
  /** outer band as a fraction of the proposal length on each side (0.25) */
  lambda: number;
  /** weight of the video score in the proposal score (0) */
  gamma: number;
  /** upsampling factor (2) */
  scale: number;
  /** seconds a snippet covers (16 frames at 25 fps = 0.64) */
  secondsPerSnippet: number;
  /**
   * Reproduce the reference's `indices.any()` test, which drops a class at a threshold when the
   * only step above it is step 0 (a bug; off by default).
   */
  referenceAnyQuirk?: boolean;
}

/** The reference's THUMOS14 settings (cfgs/thumos_hyp.yaml). */
export function defaultProposalOptions(): ProposalOptions {
  const t = defaultThresholds();
  return { casThresholds: t.cas, agnosticThresholds: t.agnostic, lambda: 0.25, gamma: 0, scale: 2, secondsPerSnippet: 16 / 25 };
}

function checkDims(op: string, T: number, C: number): void {
  if (!Number.isSafeInteger(T) || T < 1) throw new Error(`${op}: T must be a positive integer, received ${T}`);
  if (!Number.isSafeInteger(C) || C < 1) throw new Error(`${op}: C must be a positive integer, received ${C}`);
}

function checkScale(op: string, scale: number): void {
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) throw new Error(`${op}: scale must be a positive number, received ${scale}`);
}

function checkFloat32(op: string, field: string, a: unknown, expected: number, what: string): void {
  if (!(a instanceof Float32Array)) throw new Error(`${op}: ${field} must be a Float32Array`);
  if (a.length !== expected) throw new Error(`${op}: ${field} holds ${a.length} values, expected ${what} = ${expected}`);
}

/**
 * x [T, C] (row-major) -> [L, C] float64, L = T * scale (numpy's arange length for 1 / scale
 * steps), linear interpolation with extrapolation past the last snippet.
 */
export function upsampleLinear(x: Float32Array, T: number, C: number, scale: number): Float64Array {
  const op = 'upsampleLinear';
  checkDims(op, T, C);
  checkScale(op, scale);
  checkFloat32(op, 'x', x, T * C, 'T*C');
  return cpu().upsample_linear(x, T, C, scale) as Float64Array;
}

/**
 * Every stage-1 candidate of one video (the positive proposals PP of SPEC §3 before NMS).
 * cas: cas_S [T, C] after the sigmoid, not upsampled; agnostic: 1 - bkg [T]; classes: the
 * predicted class indices (see predictClasses); vidScore: the video score [C].
 */
export function generateProposals(
  cas: Float32Array,
  agnostic: Float32Array,
  T: number,
  C: number,
  classes: number[],
  vidScore: Float32Array,
  opts: ProposalOptions,
): Proposal[] {
  const op = 'generateProposals';
  checkDims(op, T, C);
  checkFloat32(op, 'cas', cas, T * C, 'T*C');
  checkFloat32(op, 'agnostic', agnostic, T, 'T');
  checkFloat32(op, 'vidScore', vidScore, C, 'C');
  if (!Array.isArray(classes)) throw new Error(`${op}: classes must be an array of class indices`);
  const seen = new Set<number>();
  classes.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new Error(`${op}: classes[${i}] = ${c} is not a class index in [0, ${C})`);
    if (seen.has(c)) throw new Error(`${op}: classes[${i}] = ${c} is repeated`);
    seen.add(c);
  });
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: options are required (see defaultProposalOptions())`);
  const thresholds = (field: 'casThresholds' | 'agnosticThresholds'): Float64Array => {
    const list = opts[field];
    if (!Array.isArray(list)) throw new Error(`${op}: options.${field} must be an array of numbers`);
    list.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${op}: options.${field}[${i}] must be a finite number, received ${v}`);
    });
    return Float64Array.from(list);
  };
  const cth = thresholds('casThresholds');
  const ath = thresholds('agnosticThresholds');
  checkScale(op, opts.scale);
  for (const field of ['lambda', 'gamma', 'secondsPerSnippet'] as const) {
    const v = opts[field];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${op}: options.${field} must be a finite number, received ${v}`);
  }
  if (opts.lambda < 0) throw new Error(`${op}: options.lambda must be >= 0, received ${opts.lambda}`);
  if (opts.secondsPerSnippet <= 0) throw new Error(`${op}: options.secondsPerSnippet must be > 0, received ${opts.secondsPerSnippet}`);
  const stepSeconds = opts.secondsPerSnippet / opts.scale;
  const rows = cpu().oic_proposals(
    cas,
    agnostic,
    T,
    C,
    Int32Array.from(classes),
    vidScore,
    cth,
    ath,
    opts.lambda,
    opts.gamma,
    opts.scale,
    stepSeconds,
    opts.referenceAnyQuirk ?? false,
  ) as Float64Array;
  return fromRows(rows);
}

/**
 * Predicted classes of a video (SPEC §2): every class with video score >= threshold, ascending;
 * if none, the first class with the highest score. HR-Pro uses 0.5, TSPNet 0.1 (SPEC §5).
 */
export function predictClasses(vidScore: Float32Array | Float64Array | number[], threshold = 0.5): number[] {
  if (vidScore.length === 0) throw new Error('predictClasses: vidScore is empty');
  const out: number[] = [];
  let best = 0;
  for (let c = 0; c < vidScore.length; c++) {
    if (Number.isNaN(vidScore[c])) throw new Error(`predictClasses: vidScore[${c}] is NaN`);
    if (vidScore[c] >= threshold) out.push(c);
    if (vidScore[c] > vidScore[best]) best = c;
  }
  return out.length > 0 ? out : [best];
}
