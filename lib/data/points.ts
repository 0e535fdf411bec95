/**
 * points.ts: point labels (one frame per action instance) simulated from full annotations, the way
 * the point-supervised benchmarks' labels are made: the THUMOS14 / GTEA / BEOID
 * `point_gaussian.csv` files that LACP and HR-Pro ship are, as their name says, one frame per
 * instance drawn from a Gaussian around the instance's center (the simulation of single-timestamp
 * annotators after Moltisanti et al., CVPR 2019), and every one lies inside its instance.
 *
 * The sigma. We could not retrieve the script that generated those files, so the default is
 * measured on them (the copies in data/, every instance): the offset of the point from the
 * instance's center has a standard deviation of 1.06 frames on THUMOS14 (30 fps, 3003 points),
 * 0.52 on GTEA (15 fps) and 0.67 on BEOID (30 fps), the same for short and long instances (it does
 * not grow with the instance's length), a mean of -0.5 to -1.5 frames, and every point inside its
 * instance. So the default is sigma = 1 frame at the video's fps: labels like the benchmarks'
 * (practically the center). `sigmaFraction` draws instead with sigma = that fraction of the
 * instance's length (1/6: the instance spans +-3 sigma), a noisier annotator; `uniform` draws any
 * frame of the instance with equal probability (an annotator who clicks anywhere inside the
 * action); `center` is the rounded center frame. Gaussian draws are clipped to the instance.
 *
 * Frames are at the video's own fps (gt_full.json's `fps`), as in the csv the loader reads:
 * `class,class_index,start_frame,stop_frame,video_id,point`, with start/stop_frame = the segment's
 * seconds * fps rounded. A point is an integer frame in [ceil(start * fps), floor(end * fps)] (the
 * rounded center when no integer frame lies inside), and in [0, floor(duration * fps)].
 *
 * Deterministic: each video's draws come from an Rng (lib/util/rng.ts) seeded by (seed, video
 * name), so a video's points do not depend on which other videos or subsets are labelled.
 */
import { Rng } from '../util/rng';
import { GroundTruthFile, TimedGtVideo, groundTruthLabels, readGroundTruth, requireTiming } from '../formats/ground_truth';
import { POINT_HEADER, PointRow, pointLabelsText, readPointLabels } from '../formats/point_labels';
import { readSplit } from '../formats/splits';
import { emptyRecord } from '../formats/text';
import { videoSeed } from './synth';

export type PointDistribution = 'gaussian' | 'uniform' | 'center';
export const POINT_DISTRIBUTIONS: PointDistribution[] = ['gaussian', 'uniform', 'center'];

/** The default sigma of the Gaussian, in frames (measured on the released labels, see above). */
export const DEFAULT_POINT_SIGMA_FRAMES = 1;

export interface SimulatePointsOptions {
  distribution?: PointDistribution;
  seed?: number;
  /** Gaussian standard deviation in frames (default 1) */
  sigma?: number;
  /** Gaussian standard deviation as a fraction of the instance's length (instead of `sigma`) */
  sigmaFraction?: number;
  /** label only the videos of these subsets of gt_full.json (default: every video) */
  subsets?: string[];
}

export interface SimulatedPoint {
  label: string;
  classIndex: number;
  startFrame: number;
  stopFrame: number;
  video: string;
  point: number;
  /** the instance's center in (fractional) frames, for tests and statistics */
  center: number;
}

export interface SimulatedPoints {
  points: SimulatedPoint[];
  classes: string[];
  videos: number;
  subsets: Record<string, number>;
}

/** Simulated point labels of a gt_full.json. */
export function simulatePoints(gtFile: string, opts: SimulatePointsOptions = {}): SimulatedPoints {
  const distribution = opts.distribution ?? 'gaussian';
  if (!POINT_DISTRIBUTIONS.includes(distribution)) throw new Error(`points: distribution must be one of ${POINT_DISTRIBUTIONS.join(', ')}, received '${distribution}'`);
  const seed = opts.seed ?? 0;
  // a setting that would be ignored is an error: a sigma for another distribution, or both sigmas
  if (distribution !== 'gaussian' && (opts.sigma !== undefined || opts.sigmaFraction !== undefined))
    throw new Error(`points: sigma and sigmaFraction are for the gaussian distribution, not '${distribution}'`);
  if (opts.sigma !== undefined && opts.sigmaFraction !== undefined) throw new Error('points: give sigma (frames) or sigmaFraction (of the instance length), not both');
  const sigma = opts.sigma ?? DEFAULT_POINT_SIGMA_FRAMES;
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new Error(`points: sigma must be a non-negative number of frames, received ${sigma}`);
  if (opts.sigmaFraction !== undefined && !(opts.sigmaFraction >= 0 && Number.isFinite(opts.sigmaFraction)))
    throw new Error(`points: sigmaFraction must be a non-negative number, received ${opts.sigmaFraction}`);
  const gt = requireTiming(readGroundTruth(gtFile), gtFile);
  // class indices: THUMOS14's label_id when every annotation has one, else the sorted labels (the loader's order)
  const ids = new Map<string, number>();
  let allIds = true;
  for (const v of gt.values()) for (const a of v.annotations) {
    if (a.labelId !== undefined) ids.set(a.label, a.labelId);
    else allIds = false;
  }
  const classes = groundTruthLabels(gt);
  const classIndex = (label: string): number => (allIds && ids.has(label) ? ids.get(label)! : classes.indexOf(label));

  const known = [...new Set([...gt.values()].map((v) => v.subset))];
  for (const s of opts.subsets ?? [])
    if (!known.includes(s)) throw new Error(`points: ${gtFile} has no subset "${s}" (its subsets: ${known.join(', ')})`);
  const subsets = emptyRecord<number>();
  const points: SimulatedPoint[] = [];
  let videos = 0;
  for (const [name, v] of gt) {
    if (opts.subsets && !opts.subsets.includes(v.subset)) continue;
    videos++;
    subsets[v.subset] = (subsets[v.subset] ?? 0) + 1;
    const rng = new Rng(videoSeed(seed, 'points:' + name));
    const lastFrame = Math.floor(v.duration * v.fps);
    const anns = [...v.annotations].sort((a, b) => a.segment[0] - b.segment[0] || a.segment[1] - b.segment[1] || a.label.localeCompare(b.label));
    for (const a of anns) {
      const s = Math.min(a.segment[0], a.segment[1]) * v.fps;
      const e = Math.max(a.segment[0], a.segment[1]) * v.fps;
      const center = (s + e) / 2;
      let lo = Math.ceil(s);
      let hi = Math.floor(e);
      if (lo > hi) lo = hi = Math.round(center);
      let p: number;
      if (distribution === 'center') p = Math.round(center);
      else if (distribution === 'uniform') p = lo + rng.int(hi - lo + 1);
      else {
        const sd = opts.sigmaFraction !== undefined ? opts.sigmaFraction * (e - s) : sigma;
        p = Math.round(center + sd * rng.normal());
      }
      p = Math.max(lo, Math.min(hi, p));
      p = Math.max(0, Math.min(lastFrame, p));
      points.push({ label: a.label, classIndex: classIndex(a.label), startFrame: Math.round(s), stopFrame: Math.round(e), video: name, point: p, center });
    }
  }
  return { points, classes, videos, subsets };
}

/** The csv text the dataset loader reads (header `class,class_index,start_frame,stop_frame,video_id,point`). */
export function pointsCsv(points: SimulatedPoint[]): string {
  return pointLabelsText(POINT_HEADER, points.map((p) => [p.label, p.classIndex, p.startFrame, p.stopFrame, p.video, p.point]));
}

export interface GroundTruthFromPointsOptions {
  /** the videos' frame rate, for every video (the csv's frames are at the video's own fps, which it does not record) */
  fps: number;
  /** the video lasts this fraction longer than its last instance's end (a guess: the csv does not record durations) */
  durationMargin?: number;
  /**
   * seconds: a video whose instances all end before this is left out (default 1: 24 videos of
   * ActivityNet 1.3's csv have only instances like [0.01, 0.02] s, degenerate annotations; their
   * real length is unknown)
   */
  minDuration?: number;
  /**
   * test videos drawn from the labelled training videos (this fraction, seeded): for csvs that
   * label only the training split (ActivityNet 1.3's: its test videos have no row, so no ground truth)
   */
  holdout?: number;
  seed?: number;
  /** gt_full.json subset names of the two splits (ActivityNet's: 'training', 'validation') */
  trainSubset?: string;
  testSubset?: string;
}

export interface GroundTruthFromPoints {
  /** the ground truth formed */
  gt: GroundTruthFile;
  /** the splits of the videos in gt (with `holdout`: the new ones) */
  splits: Record<'train' | 'test', string[]>;
  /** split videos without a point label (left out: no annotation of them exists) */
  withoutPoints: Record<'train' | 'test', number>;
  /** labelled videos left out because every instance ends before minDuration */
  degenerate: string[];
  /** the csv's header and the rows of the videos kept, as read */
  header: string[];
  keptRows: PointRow[];
  instances: number;
}

/**
 * gt_full.json built from a point-label csv whose rows carry each instance's `start_frame` and
 * `stop_frame` (ActivityNet 1.3's released labels: the only annotations of it we have). Each row
 * is one instance: segment = [start_frame, stop_frame] / fps. What the csv does not say is
 * guessed, and the options name the guess: one fps for every video, and a duration of the last
 * instance's end (or the last point) times 1 + durationMargin. Videos without a row, and those
 * whose instances all end before minDuration, are left out.
 */
export function groundTruthFromPoints(csvFile: string, trainSplitFile: string, testSplitFile: string, opts: GroundTruthFromPointsOptions): GroundTruthFromPoints {
  const fps = opts.fps;
  const margin = opts.durationMargin ?? 0.1;
  if (!(fps > 0 && Number.isFinite(fps))) throw new Error(`gt: fps must be a positive number, received ${fps}`);
  if (!(margin >= 0 && Number.isFinite(margin))) throw new Error(`gt: durationMargin must be a non-negative number, received ${margin}`);
  if (opts.holdout !== undefined && !(opts.holdout > 0 && opts.holdout < 1)) throw new Error(`gt: holdout must be a fraction in (0, 1), received ${opts.holdout}`);
  const { header, rows } = readPointLabels(csvFile);
  const byVideo = new Map<string, PointRow[]>();
  for (const r of rows) {
    if (r.startFrame === undefined || r.stopFrame === undefined)
      throw new Error(`${csvFile}:${r.line}: no "start_frame"/"stop_frame": ground truth cannot be formed from this csv`);
    let list = byVideo.get(r.video);
    if (!list) byVideo.set(r.video, (list = []));
    list.push(r);
  }
  const lists = { train: readSplit(trainSplitFile), test: readSplit(testSplitFile) };
  for (const v of lists.train) if (lists.test.includes(v)) throw new Error(`gt: video "${v}" is in both ${trainSplitFile} and ${testSplitFile}`);
  const minDuration = opts.minDuration ?? 1;
  const lastEnd = (name: string): number => Math.max(...byVideo.get(name)!.map((r) => Math.max(r.stopFrame!, r.frame))) / fps;
  const withoutPoints = { train: 0, test: 0 };
  const degenerate: string[] = [];
  const labelled = { train: [] as string[], test: [] as string[] };
  for (const split of ['train', 'test'] as const)
    for (const v of lists[split]) {
      if (!byVideo.has(v)) withoutPoints[split]++;
      else if (lastEnd(v) < minDuration) degenerate.push(v);
      else labelled[split].push(v);
    }
  let splits = labelled;
  if (opts.holdout !== undefined) {
    // a seeded draw of round(holdout * n) training videos, kept in split order
    const rng = new Rng(videoSeed(opts.seed ?? 0, 'gt:holdout'));
    const order = labelled.train.map((v, i) => ({ v, i, key: rng.uniform() })).sort((a, b) => a.key - b.key);
    const chosen = new Set(order.slice(0, Math.round(opts.holdout * order.length)).map((o) => o.v));
    splits = { train: labelled.train.filter((v) => !chosen.has(v)), test: labelled.train.filter((v) => chosen.has(v)) };
  } else if (labelled.test.length === 0) {
    throw new Error(`gt: no video of ${testSplitFile} has a row in ${csvFile}, so the test split would have no ground truth; draw test videos from the training split with a holdout fraction`);
  }
  const subsetOf = { train: opts.trainSubset ?? 'training', test: opts.testSubset ?? 'validation' };
  const database = new Map<string, TimedGtVideo>();
  let instances = 0;
  for (const split of ['train', 'test'] as const) {
    for (const name of splits[split]) {
      const list = byVideo.get(name)!;
      const annotations = list.map((r) => ({ label: r.label, segment: [r.startFrame! / fps, r.stopFrame! / fps] as [number, number] }));
      database.set(name, { subset: subsetOf[split], duration: lastEnd(name) * (1 + margin), fps, annotations });
      instances += annotations.length;
    }
  }
  const keptRows = rows.filter((r) => database.has(r.video));
  return { gt: database, splits, withoutPoints, degenerate, header, keptRows, instances };
}
