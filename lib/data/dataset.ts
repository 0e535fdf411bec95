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
import { GT_FILE, GroundTruthFile, GtSegment, TimedGtVideo, groundTruthLabels, readGroundTruth, requireTiming } from '../formats/ground_truth';
import { POINT_FILE, PointLabelsFile, PointRow, readPointLabels } from '../formats/point_labels';
import { AMBIGUOUS_FILE, AmbiguousSegments, Split, readAmbiguous, readSplit, splitFile } from '../formats/splits';
import { videoFile } from '../util/paths';

export type { Split, GtSegment };


export interface PointLabel {
  snippet: number;
  classIndex: number;
  /** The csv's `point` column: a frame index at the video's own fps. */
  frame: number;
  /** Seconds: frame / fps. */
  time: number;
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
  /** gt_full.json as read (every video, any subset): the evaluator's ground truth comes from it */
  groundTruth: GroundTruthFile;
  trainSubset: string;
  testSubset: string;
  skipped: SkipReport;
}

export interface LoadDatasetOptions {
  splits?: Split[];
  onWarning?: (msg: string) => void;
  /** Read at most this many videos of each split (the first ones of the split file). */
  maxVideos?: number;
  /** the folder's annotation files already parsed (`pstal check` hands its parse on): not read again */
  files?: DatasetFiles;
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

/** The files of a dataset folder, parsed (what `pstal check` reads and hands on to the loader). */
export interface DatasetFiles {
  gtFile: string;
  gt: Map<string, TimedGtVideo>;
  lists: Map<Split, string[]>;
  pointFile: string;
  points: PointLabelsFile;
  ambiguousFile: string;
  /** empty when the folder has no Ambiguous_test.txt */
  ambiguous: AmbiguousSegments;
}

/** Reads a dataset folder's annotation files (every missing one is an error naming it; features are not read). */
export function readDatasetFiles(root: string, splits: Split[] = ['train', 'test']): DatasetFiles {
  const gtFile = path.join(root, GT_FILE);
  const gt = requireTiming(readGroundTruth(gtFile), gtFile);
  const lists = new Map<Split, string[]>();
  for (const split of splits) lists.set(split, readSplit(path.join(root, splitFile(split))));
  const pointFile = path.join(root, POINT_FILE);
  const points = readPointLabels(pointFile);
  const ambiguousFile = path.join(root, AMBIGUOUS_FILE);
  const ambiguous: AmbiguousSegments = fs.existsSync(ambiguousFile) ? readAmbiguous(ambiguousFile) : new Map();
  return { gtFile, gt, lists, pointFile, points, ambiguousFile, ambiguous };
}

export function loadDataset(root: string, config: DatasetConfig, opts: LoadDatasetOptions = {}): Dataset {
  const splits = opts.splits ?? ['train', 'test'];
  const messages: string[] = [];
  const warn = (msg: string): void => {
    messages.push(msg);
    opts.onWarning?.(msg);
  };
  const skipped: SkipReport = { missingFeatures: [], unknownVideos: [], unknownClassPoints: 0, pointsPastEnd: 0, messages };

  // Split lists before features (every missing file is reported before any feature is read).
  const files = opts.files ?? readDatasetFiles(root, splits);
  for (const split of splits) if (!files.lists.has(split)) throw new Error(`loadDataset: the parsed files of ${root} hold no ${splitFile(split)}`);
  const { gtFile, gt, lists, pointFile, ambiguous } = files;
  const rows = files.points.rows;
  const classNames = config.classNames ? [...config.classNames] : groundTruthLabels(gt);
  const classIndex = new Map(classNames.map((c, i) => [c, i] as const));
  const C = classNames.length;

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
      warn(`${splitFile(split)}: ${unknown.length} video(s) not in ${gtFile}, skipped: ${preview(unknown)}`);
      names = names.filter((n) => gt.has(n));
    }
    subsets[split] = mostCommon(names.map((n) => gt.get(n)!.subset));
    if (opts.maxVideos !== undefined) names = names.slice(0, Math.max(0, opts.maxVideos));

    const featureDir = path.join(root, 'features', split);
    const missing: string[] = [];
    for (const name of names) {
      const file = videoFile(featureDir, name, '.npy', path.join(root, splitFile(split)));
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
        features: data, videoLabel, points, gt: info.annotations.map((a) => ({ label: a.label, segment: a.segment })),
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
    root, config, classNames, train: records.train, test: records.test, ambiguous, gtFile, groundTruth: gt,
    trainSubset: subsets.train, testSubset: subsets.test, skipped,
  };
}

function preview(names: string[], n = 10): string {
  return names.length <= n ? names.join(', ') : `${names.slice(0, n).join(', ')}, ... (${names.length - n} more)`;
}
