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
import * as fs from 'fs';
import { Rng } from '../util/rng';
import { readGroundTruth } from './dataset';
import { videoSeed } from './synth';
import { parseJson } from '../util/json';

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
  const sigma = opts.sigma ?? DEFAULT_POINT_SIGMA_FRAMES;
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new Error(`points: sigma must be a non-negative number of frames, received ${sigma}`);
  if (opts.sigmaFraction !== undefined && !(opts.sigmaFraction >= 0 && Number.isFinite(opts.sigmaFraction)))
    throw new Error(`points: sigmaFraction must be a non-negative number, received ${opts.sigmaFraction}`);
  const gt = readGroundTruth(gtFile);
  // class indices: THUMOS14's label_id when every annotation has one, else the sorted labels (the loader's order)
  const raw = (parseJson(fs.readFileSync(gtFile, 'utf8'), gtFile) as { database: Record<string, { annotations?: { label: string; label_id?: unknown }[] }> }).database;
  const ids = new Map<string, number>();
  let allIds = true;
  for (const v of Object.values(raw)) for (const a of v.annotations ?? []) {
    if (typeof a.label_id === 'number' && Number.isInteger(a.label_id)) ids.set(a.label, a.label_id);
    else allIds = false;
  }
  const classes = [...new Set([...gt.values()].flatMap((v) => v.annotations.map((a) => a.label)))].sort();
  const classIndex = (label: string): number => (allIds && ids.has(label) ? ids.get(label)! : classes.indexOf(label));

  const known = [...new Set([...gt.values()].map((v) => v.subset))];
  for (const s of opts.subsets ?? [])
    if (!known.includes(s)) throw new Error(`points: ${gtFile} has no subset "${s}" (its subsets: ${known.join(', ')})`);
  const subsets: Record<string, number> = {};
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

const csvField = (s: string): string => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** The csv text the dataset loader reads (header `class,class_index,start_frame,stop_frame,video_id,point`). */
export function pointsCsv(points: SimulatedPoint[]): string {
  const rows = ['class,class_index,start_frame,stop_frame,video_id,point'];
  for (const p of points) rows.push([csvField(p.label), p.classIndex, p.startFrame, p.stopFrame, csvField(p.video), p.point].join(','));
  return rows.join('\n') + '\n';
}
