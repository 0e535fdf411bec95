/**
 * ground_truth.ts: gt_full.json (SPEC §1), the ActivityNet-style ground truth every dataset folder
 * holds and `pstal eval --gt` scores against:
 *   {"database": {video: {"subset", "duration"?, "fps"?, "annotations": [{"label", "segment": [s, e]}]}}}
 * One reader for the dataset loader, `pstal check`, the evaluator, `pstal gt`/`points`/`synth` and
 * the report. It checks types (every error names the file, the video and the field) and leaves
 * what is a matter of judgement (reversed or out-of-video segments) to its callers: `pstal check`
 * lists such segments, the evaluator refuses them.
 * The videos are a Map, so a video named `__proto__` or `constructor` is a video like any other.
 */
import { readJson, FormatError, isObject, entriesOf, shown } from './text';
import { writeJsonFileAtomic } from '../util/json';

export const GT_FILE = 'gt_full.json';

/** Largest |time| in seconds a segment may hold (about 11 days): beyond it a value is an error, not a video. */
export const MAX_SEGMENT_SECONDS = 1e6;

export interface GtSegment {
  label: string;
  /** [start, end] seconds */
  segment: [number, number];
  /** THUMOS14's class index, where the file gives one (an integer `label_id`) */
  labelId?: number;
}

export interface GtVideo {
  subset: string;
  /** seconds (ActivityNet's own files have it; required by the dataset loader) */
  duration?: number;
  /** the video's frame rate (the point csv counts frames at it; required by the dataset loader) */
  fps?: number;
  annotations: GtSegment[];
}

/** A video whose duration and fps are known (what training needs). */
export interface TimedGtVideo extends GtVideo {
  duration: number;
  fps: number;
}

/** gt_full.json in memory: video -> its record, in file order. */
export type GroundTruthFile = Map<string, GtVideo>;

/** Reads and type-checks gt_full.json. */
export function readGroundTruth(file: string): GroundTruthFile {
  const json = readJson(file, 'ground-truth file');
  const db = isObject(json) ? json.database : undefined;
  if (!isObject(db)) throw new FormatError(`${file}: no "database" object`);
  const out: GroundTruthFile = new Map();
  for (const [name, raw] of entriesOf(db)) out.set(name, readVideo(file, name, raw));
  return out;
}

function readVideo(file: string, name: string, raw: unknown): GtVideo {
  const bad = (field: string, want: string, got: unknown): never => {
    throw new FormatError(`${file}: video "${name}": field "${field}" must be ${want}, received ${shown(got)}`);
  };
  if (!isObject(raw)) throw new FormatError(`${file}: video "${name}" is not an object`);
  const v = raw;
  if (typeof v.subset !== 'string') bad('subset', 'a string', v.subset);
  if (v.duration !== undefined && !(typeof v.duration === 'number' && Number.isFinite(v.duration) && v.duration >= 0)) bad('duration', 'a non-negative number of seconds', v.duration);
  if (v.fps !== undefined && !(typeof v.fps === 'number' && Number.isFinite(v.fps) && v.fps > 0)) bad('fps', 'a positive number', v.fps);
  // a video without the field is an error, not a video without actions: that would change a score silently
  if (!('annotations' in v)) throw new FormatError(`${file}: video "${name}": no "annotations" field (a video without actions has "annotations": [])`);
  if (!Array.isArray(v.annotations)) bad('annotations', 'a list', v.annotations);
  const annotations = (v.annotations as unknown[]).map((a, i): GtSegment => {
    if (!isObject(a)) return bad(`annotations[${i}]`, 'an object {label, segment}', a);
    if (typeof a.label !== 'string' || a.label.length === 0) bad(`annotations[${i}].label`, 'a non-empty string', a.label);
    const seg = a.segment;
    if (!Array.isArray(seg) || seg.length !== 2 || !seg.every((x) => typeof x === 'number' && Number.isFinite(x)))
      throw new FormatError(`${file}: video "${name}": field "annotations[${i}].segment" must be [start, end] seconds, received ${shown(seg)}`);
    if (Math.abs(seg[0]) > MAX_SEGMENT_SECONDS || Math.abs(seg[1]) > MAX_SEGMENT_SECONDS)
      bad(`annotations[${i}].segment`, `[start, end] seconds within ${MAX_SEGMENT_SECONDS} s`, seg);
    const out: GtSegment = { label: a.label as string, segment: [seg[0], seg[1]] };
    if (typeof a.label_id === 'number' && Number.isInteger(a.label_id)) out.labelId = a.label_id;
    return out;
  });
  return { subset: v.subset as string, duration: v.duration as number | undefined, fps: v.fps as number | undefined, annotations };
}

/** The videos with their duration and fps checked present (the dataset loader's and `pstal check`'s needs). */
export function requireTiming(gt: GroundTruthFile, file: string): Map<string, TimedGtVideo> {
  for (const [name, v] of gt) {
    if (v.duration === undefined) throw new FormatError(`${file}: video "${name}": field "duration" must be a non-negative number, received undefined`);
    if (v.fps === undefined) throw new FormatError(`${file}: video "${name}": field "fps" must be a positive number, received undefined`);
  }
  return gt as Map<string, TimedGtVideo>;
}

/** Every label of the annotations, sorted (the classes of a dataset whose config lists none). */
export function groundTruthLabels(gt: GroundTruthFile): string[] {
  const labels = new Set<string>();
  for (const v of gt.values()) for (const a of v.annotations) labels.add(a.label);
  return [...labels].sort();
}

/** Writes gt_full.json atomically (video order kept). */
export function writeGroundTruth(file: string, gt: GroundTruthFile): void {
  const database: Record<string, unknown> = Object.create(null);
  for (const [name, v] of gt)
    database[name] = { ...v, annotations: v.annotations.map((a) => (a.labelId === undefined ? { label: a.label, segment: a.segment } : { label: a.label, label_id: a.labelId, segment: a.segment })) };
  writeJsonFileAtomic(file, { database });
}
