/**
 * labels.ts: TSPNet's proposal labels from point annotations and the saliency point update
 * (SPEC §5, §5.1).
 *
 * Points are kept per training video in the point file's row order (the reference's groupby keeps
 * it; the first point inside a proposal decides its center target and its point id), every row,
 * unclamped, at its exact time in snippets: frame x featureFps / (fps x snippetFrames).
 *   point label [M, C]  1 for class k when a point of class k lies strictly inside the proposal
 *   center target [M]   1 - 2 |w - 0.5|, w the first inside point's relative position; else softValue
 *   point id [M]        index of that first point in the video's list, -1 when none
 * Point update, after a pass in eval mode over all of a video's proposals: the proposals with
 * sigmoid(center) > threshold are grouped by point id; each point moves to the center-score-weighted
 * mean of its group's proposal centers; a point without a group stays where it is. The reference
 * (`reference: true`) instead adds that mean's offset from the moved point to the ORIGINAL point,
 * and sends a point without a group back to its annotation.
 */
import type { VideoRecord } from '../../data';
import { POINT_FILE, readPointLabels } from '../../formats/point_labels';
import * as path from 'path';

export interface TspPoint {
  classIndex: number;
  /** the annotation's time in snippets */
  original: number;
  /** the time the labels are built from (moved by the point update) */
  current: number;
}

export interface ProposalLabels {
  /** [M, C] multi-hot point label (background: all zero) */
  label: Float32Array;
  /** [M] center target */
  center: Float32Array;
  /** [M] index of the first point inside, -1 when none */
  pointId: Int32Array;
}

/**
 * Every training video's points in the point file's row order (not the dataset loader's sorted,
 * per-snippet deduplicated list): TSPNet's labels depend on the order and exact times.
 */
export function readTspPoints(
  root: string,
  videos: Pick<VideoRecord, 'name' | 'fps'>[],
  classNames: string[],
  timeBase: { featureFps: number; snippetFrames: number },
): Map<string, TspPoint[]> {
  const file = path.join(root, POINT_FILE);
  const rows = readPointLabels(file).rows;
  const fps = new Map(videos.map((v) => [v.name, v.fps]));
  const cls = new Map(classNames.map((c, i) => [c, i]));
  const out = new Map<string, TspPoint[]>(videos.map((v) => [v.name, []]));
  for (const r of rows) {
    const f = fps.get(r.video);
    if (f === undefined) continue;
    const c = cls.get(r.label);
    if (c === undefined) continue; // the dataset loader has already warned about unknown classes
    // the reference: float(int(point) * (feature_fps / (fps * 16)))
    const t = Math.trunc(r.frame) * (timeBase.featureFps / (f * timeBase.snippetFrames));
    out.get(r.video)!.push({ classIndex: c, original: t, current: t });
  }
  return out;
}

/** Labels of proposals [M, 2] (snippets, float64: the comparisons are the reference's, in double). */
export function proposalLabels(proposals: Float64Array, points: readonly TspPoint[], C: number, softValue: number): ProposalLabels {
  const M = proposals.length / 2;
  const label = new Float32Array(M * C);
  const center = new Float32Array(M).fill(softValue);
  const pointId = new Int32Array(M).fill(-1);
  points.forEach((p, j) => {
    const t = p.current;
    for (let m = 0; m < M; m++) {
      const s = proposals[2 * m];
      const e = proposals[2 * m + 1];
      if (!(t - s > 0 && t - e < 0)) continue;
      label[m * C + p.classIndex] = 1;
      if (pointId[m] < 0) {
        const w = (t - s) / (e - s);
        center[m] = 1 - Math.abs(w - 0.5) * 2;
        pointId[m] = j;
      }
    }
  });
  return { label, center, pointId };
}

/**
 * The saliency point update of one video from its proposals' center scores (sigmoid, eval mode).
 * Returns the new `current` of every point (the caller stores them and rebuilds the labels).
 */
export function updatedPoints(
  points: readonly TspPoint[],
  proposals: Float64Array,
  pointId: Int32Array,
  centerScore: Float32Array,
  threshold: number,
  reference: boolean,
): number[] {
  const M = proposals.length / 2;
  const groups: number[][] = points.map(() => []);
  for (let m = 0; m < M; m++) if (pointId[m] >= 0 && centerScore[m] > threshold) groups[pointId[m]].push(m);
  return points.map((p, j) => {
    const g = groups[j];
    if (!g.length) return reference ? p.original : p.current;
    if (reference) {
      // the reference's arithmetic: float32 scores, centers and moved point (its numpy arrays), the
      // offset from the moved point added to the original annotation in double
      const f = Math.fround;
      let sum = 0;
      for (const m of g) sum = f(sum + centerScore[m]);
      const at = f(p.current);
      let delta = 0;
      for (const m of g) {
        const center = f(f(f(proposals[2 * m + 1]) + f(proposals[2 * m])) / 2);
        delta = f(delta + f(f(center - at) * f(centerScore[m] / sum)));
      }
      return p.original + delta;
    }
    let sum = 0;
    let weighted = 0;
    for (const m of g) {
      sum += centerScore[m];
      weighted += centerScore[m] * ((proposals[2 * m] + proposals[2 * m + 1]) / 2);
    }
    return weighted / sum;
  });
}
