/**
 * videos.ts: what HR-Pro needs of a video (lib/data's VideoRecord has all of it), its point-label
 * matrix (SPEC §1: one 1 per annotated snippet and class), and a split's ground truth.
 */
import type { GroundTruth, Segment } from '../../eval/detection';
import { emptyRecord } from '../../formats/text';

/** What HR-Pro needs of a video (lib/data's VideoRecord has all of it). */
export interface Stage1Video {
  name: string;
  T: number;
  D: number;
  /** [T, D] */
  features: Float32Array;
  /** [C] multi-hot */
  videoLabel: Float32Array;
  points: { snippet: number; classIndex: number; time: number }[];
  gt: Segment[];
}

/** [T, C] multi-hot point labels of a video. */
export function pointMatrix(v: Stage1Video, C: number): Float32Array {
  const m = new Float32Array(v.T * C);
  for (const p of v.points) m[Math.min(p.snippet, v.T - 1) * C + p.classIndex] = 1;
  return m;
}

export function groundTruthOf(videos: Stage1Video[], classNames: string[], blocked: string[] = []): GroundTruth {
  const skip = new Set(blocked);
  const gtVideos = emptyRecord<Segment[]>();
  const present = new Set<string>();
  for (const v of videos) {
    if (skip.has(v.name)) continue;
    gtVideos[v.name] = v.gt.map((g) => ({ label: g.label, segment: [g.segment[0], g.segment[1]] }));
    for (const g of v.gt) present.add(g.label);
  }
  return { classes: classNames.filter((c) => present.has(c)), videos: gtVideos };
}
