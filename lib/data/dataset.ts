/**
 * dataset.ts: loads a dataset folder in the layout of SPEC §1 (gt_full.json, split_<split>.txt,
 * point_labels/point_gaussian.csv, Ambiguous_test.txt, features/<split>/<video>.npy) into typed
 * per-video records.
 *
 * - Video label: multi-hot over the classes of the video's gt_full.json annotations.
 * - Point label: snippet = floor(point * (featureFps / (fps * snippetFrames))) (SPEC §1), computed
 *   in that order because the reference multiplies the frame by the precomputed factor; a point
 *   past T - 1 belongs to T - 1. Several points of one class on one snippet are one label (the
 *   reference writes them into a binary [T, C] matrix), so we keep the first in csv order.
 * - The whole video is used: T = feature rows, no cropping or sampling.
 * - Subset names are read from gt_full.json (the most common subset of each split's videos).
 *
 * Recoverable problems (a listed video with no features or no ground truth, a point of an unknown
 * class, a point past the end) are skipped, counted in `skipped` and reported through onWarning;
 * anything that would make the data wrong (missing files, feature width, bad shapes) is an Error
 * naming the file.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readNpy, assertFiniteFeatures } from './npy';
import type { DatasetConfig } from './config';
import { DuplicateKeyError, parseJson } from '../util/json';

export type Split = 'train' | 'test';

export interface PointLabel {
  snippet: number;
  classIndex: number;
  /** The csv's `point` column: a frame index at the video's own fps. */
  frame: number;
  /** Seconds: frame / fps. */
  time: number;
}

export interface GtSegment {
  label: string;
  /** [start, end] seconds. */
  segment: [number, number];
}

export interface VideoRecord {
  name: string;
  split: Split;
  subset: string;
  duration: number;
  fps: number;
  T: number;
  D: number;
  /** [T, D] row-major. */
  features: Float32Array;
  /** [C] multi-hot. */
  videoLabel: Float32Array;
  /** Sorted by snippet then class. */
  points: PointLabel[];
  gt: GtSegment[];
}

export interface SkipReport {
  missingFeatures: string[];
  unknownVideos: string[];
  unknownClassPoints: number;
  pointsPastEnd: number;
  messages: string[];
}

export interface Dataset {
  root: string;
  config: DatasetConfig;
  classNames: string[];
  train: VideoRecord[];
  test: VideoRecord[];
  /** Ambiguous_test.txt: video -> [start, end] seconds, excluded from scoring (empty when absent). */
  ambiguous: Map<string, [number, number][]>;
  gtFile: string;
  trainSubset: string;
  testSubset: string;
  skipped: SkipReport;
}

export interface LoadDatasetOptions {
  splits?: Split[];
  onWarning?: (msg: string) => void;
  /** Read at most this many videos of each split (the first ones of the split file). */
  maxVideos?: number;
}

interface GtVideo {
  subset: string;
  duration: number;
  fps: number;
  annotations: GtSegment[];
}

export const GT_FILE = 'gt_full.json';
export const POINT_FILE = path.join('point_labels', 'point_gaussian.csv');
export const AMBIGUOUS_FILE = 'Ambiguous_test.txt';

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** gt_full.json's database, checked field by field. */
export function readGroundTruth(file: string): Map<string, GtVideo> {
  if (!fs.existsSync(file)) throw new Error(`ground-truth file not found: ${file}`);
  let json: unknown;
  try {
    json = parseJson(fs.readFileSync(file, 'utf8'), file);
  } catch (e) {
    throw e instanceof DuplicateKeyError ? e : new Error(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  const db = (json as { database?: unknown } | null)?.database;
  if (typeof db !== 'object' || db === null || Array.isArray(db)) throw new Error(`${file}: no "database" object`);
  const out = new Map<string, GtVideo>();
  for (const [name, raw] of Object.entries(db as Record<string, unknown>)) {
    const v = raw as Record<string, unknown>;
    const bad = (field: string, want: string): never => {
      throw new Error(`${file}: video "${name}": field "${field}" must be ${want}, received ${JSON.stringify(v?.[field])}`);
    };
    if (typeof v !== 'object' || v === null) throw new Error(`${file}: video "${name}" is not an object`);
    if (typeof v.subset !== 'string') bad('subset', 'a string');
    if (typeof v.duration !== 'number' || !(v.duration >= 0)) bad('duration', 'a non-negative number');
    if (typeof v.fps !== 'number' || !(v.fps > 0)) bad('fps', 'a positive number');
    const anns = v.annotations ?? [];
    if (!Array.isArray(anns)) bad('annotations', 'a list');
    const annotations: GtSegment[] = (anns as unknown[]).map((a, i) => {
      const ann = a as { label?: unknown; segment?: unknown };
      const seg = ann?.segment;
      if (typeof ann?.label !== 'string') bad(`annotations[${i}].label`, 'a string');
      if (!Array.isArray(seg) || seg.length !== 2 || !seg.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new Error(`${file}: video "${name}": field "annotations[${i}].segment" must be [start, end] seconds, received ${JSON.stringify(seg)}`);
      }
      return { label: ann.label as string, segment: [seg[0], seg[1]] as [number, number] };
    });
    out.set(name, { subset: v.subset as string, duration: v.duration as number, fps: v.fps as number, annotations });
  }
  return out;
}

/** split_<split>.txt: one video name a line (blank lines ignored). */
export function readSplit(file: string): string[] {
  if (!fs.existsSync(file)) throw new Error(`split file not found: ${file}`);
  const names = stripBom(fs.readFileSync(file, 'utf8'))
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const seen = new Map<string, number>();
  names.forEach((n, i) => {
    if (/[\/\\]|^\.\.?$|\0/.test(n)) throw new Error(`${file}: entry ${i + 1} ${JSON.stringify(n)} is not a video name (it holds a path separator or is . or ..)`);
    if (seen.has(n)) throw new Error(`${file}: video ${JSON.stringify(n)} is listed twice (entries ${seen.get(n)! + 1} and ${i + 1})`);
    seen.set(n, i);
  });
  return names;
}

/** One csv line into fields; double-quoted fields may hold commas and "" for a quote. */
function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field.length === 0) quoted = true;
    else if (ch === ',') {
      out.push(field);
      field = '';
    } else field += ch;
  }
  out.push(field);
  return out;
}

export interface PointRow {
  /** 1-based line number in the csv. */
  line: number;
  video: string;
  label: string;
  frame: number;
  /** the instance's start and stop frames, where the csv has `start_frame`/`stop_frame` (THUMOS14, GTEA, BEOID, ActivityNet all do) */
  startFrame?: number;
  stopFrame?: number;
}

/**
 * point_gaussian.csv: columns found by name in the header; `class`, `video_id` and `point` are
 * needed (THUMOS14's also has class_index, GTEA/BEOID/ActivityNet's do not; it is not used: the
 * class index comes from the class name and the config's class list).
 */
export function readPointCsv(file: string): PointRow[] {
  if (!fs.existsSync(file)) throw new Error(`point-label file not found: ${file}`);
  const lines = stripBom(fs.readFileSync(file, 'utf8')).split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? '').map((s) => s.trim());
  if (new Set(header).size !== header.length) throw new Error(`${file}:1: the header names a column twice (header: ${header.join(',')})`);
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`${file}: missing column "${name}" (header: ${header.join(',')})`);
    return i;
  };
  const iClass = col('class');
  const iVideo = col('video_id');
  const iPoint = col('point');
  const iStart = header.indexOf('start_frame');
  const iStop = header.indexOf('stop_frame');
  const rows: PointRow[] = [];
  for (let n = 1; n < lines.length; n++) {
    if (lines[n].trim().length === 0) continue;
    const f = splitCsvLine(lines[n]);
    if (f.length !== header.length) {
      throw new Error(`${file}:${n + 1}: expected ${header.length} fields, found ${f.length}`);
    }
    if (f.every((x, i) => x.trim() === header[i])) throw new Error(`${file}:${n + 1}: the header line again (two files concatenated?)`);
    if (f[iVideo].trim() === '') throw new Error(`${file}:${n + 1}: column "video_id" is empty`);
    if (f[iClass].trim() === '') throw new Error(`${file}:${n + 1}: column "class" is empty`);
    let startFrame: number | undefined;
    let stopFrame: number | undefined;
    if (iStart >= 0 && iStop >= 0 && f[iStart].trim() !== '' && f[iStop].trim() !== '') {
      const a = Number(f[iStart]);
      const b = Number(f[iStop]);
      if (!Number.isFinite(a) || !Number.isFinite(b) || a < 0 || b < 0)
        throw new Error(`${file}:${n + 1}: columns "start_frame", "stop_frame" must be non-negative frame numbers, received ${JSON.stringify(f[iStart])}, ${JSON.stringify(f[iStop])}`);
      if (a > b) throw new Error(`${file}:${n + 1}: "start_frame" ${a} is after "stop_frame" ${b} (reversed)`);
      startFrame = a;
      stopFrame = b;
    }
    const frame = Number(f[iPoint]);
    if (f[iPoint].trim() === '' || !Number.isFinite(frame) || frame < 0) {
      throw new Error(`${file}:${n + 1}: column "point" must be a non-negative frame number, received ${JSON.stringify(f[iPoint])}`);
    }
    rows.push({ line: n + 1, video: f[iVideo].trim(), label: f[iClass].trim(), frame, startFrame, stopFrame });
  }
  if (rows.length === 0) throw new Error(`${file}: no point labels (a header and no rows); every training video needs its points`);
  return rows;
}

/** Ambiguous_test.txt: "video start end" a line (seconds, whitespace-separated). */
export function readAmbiguous(file: string): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  const lines = stripBom(fs.readFileSync(file, 'utf8')).split(/\r?\n/);
  lines.forEach((line, i) => {
    const tokens = line.trim().split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) return;
    const start = Number(tokens[1]);
    const end = Number(tokens[2]);
    if (tokens.length !== 3 || !Number.isFinite(start) || !Number.isFinite(end)) {
      throw new Error(`${file}:${i + 1}: expected "video start end" (seconds), found ${JSON.stringify(line)}`);
    }
    if (start > end || start < 0) throw new Error(`${file}:${i + 1}: [${start}, ${end}] ${start < 0 ? 'starts before 0 s' : 'is reversed (its start is after its end)'}`);
    const list = out.get(tokens[0]) ?? [];
    list.push([start, end]);
    out.set(tokens[0], list);
  });
  return out;
}

/** Most common value (ties: the first seen). */
function mostCommon(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = '';
  let bestCount = 0;
  for (const [v, c] of counts) {
    if (c > bestCount) {
      best = v;
      bestCount = c;
    }
  }
  return best;
}

/** Snippet index of a point frame (SPEC §1), not yet clamped to T - 1. */
export function pointSnippet(frame: number, videoFps: number, config: Pick<DatasetConfig, 'featureFps' | 'snippetFrames'>): number {
  return Math.floor(frame * (config.featureFps / (videoFps * config.snippetFrames)));
}

export function loadDataset(root: string, config: DatasetConfig, opts: LoadDatasetOptions = {}): Dataset {
  const splits = opts.splits ?? ['train', 'test'];
  const messages: string[] = [];
  const warn = (msg: string): void => {
    messages.push(msg);
    opts.onWarning?.(msg);
  };
  const skipped: SkipReport = { missingFeatures: [], unknownVideos: [], unknownClassPoints: 0, pointsPastEnd: 0, messages };

  const gtFile = path.join(root, GT_FILE);
  const gt = readGroundTruth(gtFile);
  const classNames = config.classNames
    ? [...config.classNames]
    : [...new Set([...gt.values()].flatMap((v) => v.annotations.map((a) => a.label)))].sort();
  const classIndex = new Map(classNames.map((c, i) => [c, i] as const));
  const C = classNames.length;

  // Split lists first (every missing file is reported before any feature is read).
  const lists = new Map<Split, string[]>();
  for (const split of splits) lists.set(split, readSplit(path.join(root, `split_${split}.txt`)));
  const pointFile = path.join(root, POINT_FILE);
  const rows = readPointCsv(pointFile);
  const ambiguousFile = path.join(root, AMBIGUOUS_FILE);
  const ambiguous = fs.existsSync(ambiguousFile) ? readAmbiguous(ambiguousFile) : new Map<string, [number, number][]>();

  const rowsByVideo = new Map<string, PointRow[]>();
  for (const r of rows) {
    const list = rowsByVideo.get(r.video);
    if (list) list.push(r);
    else rowsByVideo.set(r.video, [r]);
  }

  const unknownClassCounts = new Map<string, number>();
  const unknownGtLabels = new Map<string, number>();
  const subsets: Record<Split, string> = { train: '', test: '' };
  const records: Record<Split, VideoRecord[]> = { train: [], test: [] };

  for (const split of splits) {
    let names = lists.get(split)!;
    const unknown = names.filter((n) => !gt.has(n));
    if (unknown.length > 0) {
      skipped.unknownVideos.push(...unknown);
      warn(`split_${split}.txt: ${unknown.length} video(s) not in ${gtFile}, skipped: ${preview(unknown)}`);
      names = names.filter((n) => gt.has(n));
    }
    subsets[split] = mostCommon(names.map((n) => gt.get(n)!.subset));
    if (opts.maxVideos !== undefined) names = names.slice(0, Math.max(0, opts.maxVideos));

    const featureDir = path.join(root, 'features', split);
    const missing: string[] = [];
    for (const name of names) {
      const file = path.join(featureDir, `${name}.npy`);
      if (!fs.existsSync(file)) {
        missing.push(name);
        continue;
      }
      const { data, shape } = readNpy(file);
      if (shape.length !== 2) throw new Error(`${file}: features must be [T, D], found shape [${shape.join(', ')}]`);
      const [T, D] = shape;
      if (D !== config.featureDim) {
        throw new Error(`${file}: feature width ${D} does not match the config's featureDim ${config.featureDim}`);
      }
      if (T === 0) throw new Error(`${file}: features must have at least one row, found shape [0, ${D}]`);
      assertFiniteFeatures(file, data, D);
      const info = gt.get(name)!;

      const videoLabel = new Float32Array(C);
      for (const a of info.annotations) {
        const c = classIndex.get(a.label);
        if (c === undefined) unknownGtLabels.set(a.label, (unknownGtLabels.get(a.label) ?? 0) + 1);
        else videoLabel[c] = 1;
      }

      const points: PointLabel[] = [];
      const seen = new Set<number>();
      for (const r of rowsByVideo.get(name) ?? []) {
        const c = classIndex.get(r.label);
        if (c === undefined) {
          skipped.unknownClassPoints++;
          unknownClassCounts.set(r.label, (unknownClassCounts.get(r.label) ?? 0) + 1);
          continue;
        }
        let snippet = pointSnippet(r.frame, info.fps, config);
        if (snippet > T - 1) {
          snippet = T - 1;
          skipped.pointsPastEnd++;
        }
        const key = snippet * C + c;
        if (seen.has(key)) continue;
        seen.add(key);
        points.push({ snippet, classIndex: c, frame: r.frame, time: r.frame / info.fps });
      }
      points.sort((a, b) => a.snippet - b.snippet || a.classIndex - b.classIndex);

      records[split].push({
        name, split, subset: info.subset, duration: info.duration, fps: info.fps, T, D,
        features: data, videoLabel, points, gt: info.annotations,
      });
    }
    if (missing.length > 0) {
      skipped.missingFeatures.push(...missing);
      warn(`${featureDir}: ${missing.length} of ${names.length} listed video(s) have no .npy features, skipped: ${preview(missing)}`);
    }
  }

  for (const [label, count] of unknownClassCounts) {
    warn(`${pointFile}: class "${label}" is not among the ${C} classes; its ${count} point(s) skipped`);
  }
  if (skipped.pointsPastEnd > 0) {
    warn(`${pointFile}: ${skipped.pointsPastEnd} point(s) fall past the last snippet of their video; moved to snippet T - 1`);
  }
  for (const [label, count] of unknownGtLabels) {
    warn(`${gtFile}: label "${label}" is not among the ${C} classes; ${count} annotation(s) left out of video labels`);
  }

  const unknownPointVideos = [...rowsByVideo.keys()].filter((v) => !gt.has(v));
  if (unknownPointVideos.length)
    warn(`${pointFile}: ${unknownPointVideos.length} video id(s) not in ${gtFile}, their points ignored: ${preview(unknownPointVideos)}`);

  return {
    root, config, classNames, train: records.train, test: records.test, ambiguous, gtFile,
    trainSubset: subsets.train, testSubset: subsets.test, skipped,
  };
}

function preview(names: string[], n = 10): string {
  return names.length <= n ? names.join(', ') : `${names.slice(0, n).join(', ')}, ... (${names.length - n} more)`;
}
