/**
 * check.ts: validates a dataset folder (SPEC §1 layout) before training, reading only what is
 * cheap: gt_full.json, the split lists, the point csv, Ambiguous_test.txt and the *headers* of the
 * feature files (never their data). `pstal check` prints every problem; `pstal run` / `pstal train`
 * run the same checks first and stop on the errors, so a bad dataset fails in a second with the
 * same messages instead of half-way through training.
 *
 * Errors (the dataset cannot be trained on as it is):
 *   - a missing gt_full.json, split file or point csv, or one that does not parse;
 *   - a split video absent from gt_full.json, or without its features/<split>/<video>.npy;
 *   - a feature file that is not a float [T, D] .npy with T >= 1, is shorter than its header says,
 *     or whose D differs from --dim (or, without --dim, from the first training video's D);
 *   - a feature length T more than a factor 2 away from duration * featureFps / snippetFrames
 *     (features at another rate than the config says: every point would land on the wrong snippet);
 *   - a point label of a class that is not among the dataset's classes, or whose frame lies outside
 *     its video (past duration * fps, one frame of slack);
 *   - a ground-truth segment whose start is after its end, or whose label is not among the
 *     config's classNames (when the config lists them);
 *   - an ambiguous-segments file that does not parse, or with a reversed segment.
 * Warnings (printed; training goes on):
 *   - T further than max(3 snippets, 10 %) from duration * featureFps / snippetFrames (I3D feature
 *     extractors pad or drop the last partial snippet and container durations are approximate, so
 *     a few snippets are normal; more suggests the wrong video or fps);
 *   - a ground-truth segment that ends past its video's duration or starts before 0 (THUMOS14's
 *     own gt_full.json has six of these among its split videos: known annotation errors);
 *     a zero-length segment;
 *   - a point inside no ground-truth instance of its class, or outside its own start/stop columns;
 *   - a training video without any point label; a video listed in both splits; point rows or
 *     ambiguous rows of videos absent from gt_full.json.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readNpyHeader } from './npy';
import { overLimit, stage1BatchProblem } from '../util/limits';
import type { DatasetConfig } from './config';
import type { DatasetFiles } from './dataset';
import { GT_FILE, TimedGtVideo, groundTruthLabels, readGroundTruth, requireTiming } from '../formats/ground_truth';
import { POINT_FILE, PointLabelsFile, readPointLabels } from '../formats/point_labels';
import { AMBIGUOUS_FILE, AmbiguousSegments, Split, readAmbiguous, readSplit, splitFile } from '../formats/splits';
import { emptyRecord } from '../formats/text';
import { videoFile } from '../util/paths';

export type Severity = 'error' | 'warning';

export type ProblemKind =
  | 'file' | 'unknown-video' | 'missing-features' | 'bad-features' | 'feature-width' | 'feature-length'
  | 'unknown-class' | 'point-outside' | 'point-off-instance' | 'reversed-segment' | 'segment-outside' | 'empty-segment'
  | 'no-points' | 'both-splits' | 'ambiguous' | 'batch-size';

export interface DataProblem {
  severity: Severity;
  kind: ProblemKind;
  /** the file the problem is in (absolute or as given) */
  file: string;
  /** 1-based line of the file, for csv / txt files */
  line?: number;
  video?: string;
  field?: string;
  message: string;
}

export interface SplitSummary {
  /** videos the split file lists */
  listed: number;
  /** of those, videos with a readable feature file */
  withFeatures: number;
  /** feature rows of those */
  snippets: number;
  /** ground-truth instances of the listed videos */
  instances: number;
  /** point labels of the listed videos */
  points: number;
  subset: string;
}

export interface CheckSummary {
  root: string;
  /** feature width the files were checked against, and where it came from */
  dim: number | null;
  dimSource: string;
  classes: string[];
  splits: Partial<Record<Split, SplitSummary>>;
  /** class -> ground-truth instances in each split, and point labels (all splits) */
  perClass: Record<string, { train: number; test: number; points: number }>;
  /** point labels of the training videos / their ground-truth instances */
  pointsPerInstance: number;
  ambiguousSegments: number;
}

export interface CheckResult {
  problems: DataProblem[];
  errors: number;
  warnings: number;
  summary: CheckSummary;
  /** the annotation files as parsed, when every one of them parsed (the loader takes them: nothing is read twice) */
  files?: DatasetFiles;
}

/** A stage's videos a batch and where it was set: an option (file '--batch-size') or a config file and field. */
export interface StageBatch {
  value: number;
  file: string;
  field?: string;
}

export interface CheckOptions {
  /** an explicit feature width (--dim); without it, the first training video's width */
  dim?: number;
  /**
   * stage 1's videos a batch, checked against the training videos (lib/util/limits.ts); default:
   * the config's stage1.batchSize when the config has one
   */
  stage1Batch?: StageBatch;
  splits?: Split[];
  /** relative tolerance of T against duration * featureFps / snippetFrames (0.1), at least 3 snippets */
  lengthTolerance?: number;
}

/** Defaults of the length check: warn past max(LENGTH_SLACK snippets, tolerance * expected). */
export const LENGTH_TOLERANCE = 0.1;
export const LENGTH_SLACK = 3;

/** One line for a problem: "error: FILE:LINE: video "V": FIELD: message". */
export function formatProblem(p: DataProblem): string {
  const where = [p.line !== undefined ? `${p.file}:${p.line}` : p.file];
  if (p.video !== undefined) where.push(`video "${p.video}"`);
  if (p.field !== undefined) where.push(p.field);
  return `${p.severity}: ${where.join(': ')}: ${p.message}`;
}

/**
 * The problems as lines, at most `perKind` of each kind (0: all) with a count of the rest, errors
 * first.
 */
export function formatProblems(problems: DataProblem[], perKind = 20): string[] {
  const out: string[] = [];
  for (const sev of ['error', 'warning'] as Severity[]) {
    const byKind = new Map<ProblemKind, DataProblem[]>();
    for (const p of problems) if (p.severity === sev) byKind.set(p.kind, [...(byKind.get(p.kind) ?? []), p]);
    for (const [kind, list] of byKind) {
      const shown = perKind > 0 ? list.slice(0, perKind) : list;
      out.push(...shown.map(formatProblem));
      if (shown.length < list.length) out.push(`${sev}: ... and ${list.length - shown.length} more of the same kind (${kind})`);
    }
  }
  return out;
}

/** The first training video's feature file and its width (what --dim defaults to), or null. */
export function dataFeatureWidth(root: string): { dim: number; file: string } | null {
  const list = path.join(root, splitFile('train'));
  const names = fs.existsSync(list) ? readSplit(list) : [];
  for (const name of names) {
    const file = videoFile(path.join(root, 'features', 'train'), name, '.npy', list);
    if (!fs.existsSync(file)) continue;
    const h = readNpyHeader(file);
    if (h.shape.length !== 2) throw new Error(`${file}: features must be [T, D], found shape [${h.shape.join(', ')}]`);
    return { dim: h.shape[1], file };
  }
  return null;
}

function preview(xs: string[], n = 8): string {
  return xs.length <= n ? xs.join(', ') : `${xs.slice(0, n).join(', ')}, ... (${xs.length} in all)`;
}

const fmt = (x: number): string => String(Math.round(x * 1000) / 1000);

/**
 * Checks a dataset folder against a config (feature rate, snippet length, class names). Never
 * throws for a problem of the data: every one is returned, with its severity.
 */
export function checkDataset(
  root: string,
  config: Pick<DatasetConfig, 'featureFps' | 'snippetFrames' | 'classNames'> & Partial<Pick<DatasetConfig, 'stage1' | 'file' | 'name'>>,
  opts: CheckOptions = {},
): CheckResult {
  const problems: DataProblem[] = [];
  const add = (p: DataProblem): void => {
    problems.push(p);
  };
  const splits = opts.splits ?? (['train', 'test'] as Split[]);
  const tol = opts.lengthTolerance ?? LENGTH_TOLERANCE;
  const summary: CheckSummary = { root, dim: opts.dim ?? null, dimSource: opts.dim !== undefined ? '--dim' : '', classes: [], splits: {}, perClass: emptyRecord(), pointsPerInstance: 0, ambiguousSegments: 0 };
  let files: DatasetFiles | undefined;
  const result = (): CheckResult => ({
    problems,
    errors: problems.filter((p) => p.severity === 'error').length,
    warnings: problems.filter((p) => p.severity === 'warning').length,
    summary,
    files,
  });

  // ---- ground truth --------------------------------------------------------------------------
  const gtFile = path.join(root, GT_FILE);
  let gt: Map<string, TimedGtVideo>;
  try {
    gt = requireTiming(readGroundTruth(gtFile), gtFile);
  } catch (e) {
    add({ severity: 'error', kind: 'file', file: gtFile, message: stripFile((e as Error).message, gtFile) });
    return result();
  }
  const classes = config.classNames ? [...config.classNames] : groundTruthLabels(gt);
  summary.classes = classes;
  const known = new Set(classes);
  summary.perClass = emptyRecord();
  for (const c of classes) summary.perClass[c] = { train: 0, test: 0, points: 0 };

  // ---- split lists -----------------------------------------------------------------------------
  const lists = new Map<Split, string[]>();
  for (const split of splits) {
    const file = path.join(root, splitFile(split));
    try {
      lists.set(split, readSplit(file));
    } catch (e) {
      add({ severity: 'error', kind: 'file', file, message: stripFile((e as Error).message, file) });
      continue;
    }
    const names = lists.get(split)!;
    if (names.length === 0) add({ severity: 'error', kind: 'file', file, message: 'lists no video' });
    names.forEach((name, i) => {
      if (!gt.has(name)) add({ severity: 'error', kind: 'unknown-video', file, line: i + 1, video: name, message: `is not in ${gtFile}` });
    });
  }
  // stage 1's batch against the training videos (a batch much larger than the list repeats videos in every step)
  const batch = opts.stage1Batch ?? (config.stage1 ? { value: config.stage1.batchSize, file: config.file ?? `config ${config.name ?? ''}`.trim(), field: 'stage1.batchSize' } : undefined);
  const trainList = lists.get('train');
  const tooLarge = batch && trainList?.length ? stage1BatchProblem(batch.value, trainList.length) : null;
  if (batch && tooLarge) add({ severity: 'error', kind: 'batch-size', file: batch.file, field: batch.field, message: tooLarge });
  const inSplit = new Map<string, Split>();
  for (const [split, names] of lists) {
    for (const n of names) {
      const other = inSplit.get(n);
      if (other && other !== split) add({ severity: 'warning', kind: 'both-splits', file: path.join(root, splitFile(split)), video: n, message: `is also listed in ${splitFile(other)}` });
      else inSplit.set(n, split);
    }
  }

  // ---- ground-truth segments of the split videos -------------------------------------------------
  for (const [split, names] of lists) {
    for (const name of new Set(names)) {
      const v = gt.get(name);
      if (!v) continue;
      v.annotations.forEach((a, i) => {
        const [s, e] = a.segment;
        const field = `annotations[${i}]`;
        if (!known.has(a.label)) {
          add({ severity: 'error', kind: 'unknown-class', file: gtFile, video: name, field: `${field}.label`, message: `"${a.label}" is not among the config's ${classes.length} classes (${preview(classes)})` });
        } else summary.perClass[a.label][split]++;
        if (s > e) add({ severity: 'error', kind: 'reversed-segment', file: gtFile, video: name, field: `${field}.segment`, message: `[${s}, ${e}] is reversed: its start is after its end` });
        else if (s === e) add({ severity: 'warning', kind: 'empty-segment', file: gtFile, video: name, field: `${field}.segment`, message: `[${s}, ${e}] has zero length` });
        if (s < 0 || e > v.duration)
          add({ severity: 'warning', kind: 'segment-outside', file: gtFile, video: name, field: `${field}.segment`, message: `[${s}, ${e}] is not inside the video (duration ${fmt(v.duration)} s)` });
      });
    }
  }

  // ---- features: headers only ----------------------------------------------------------------------
  let dim = opts.dim;
  let dimFile = '';
  for (const [split, names] of lists) {
    const s: SplitSummary = { listed: names.length, withFeatures: 0, snippets: 0, instances: 0, points: 0, subset: mostCommon(names.filter((n) => gt.has(n)).map((n) => gt.get(n)!.subset)) };
    summary.splits[split] = s;
    for (const name of names) {
      const v = gt.get(name);
      if (v) s.instances += v.annotations.length;
      const file = videoFile(path.join(root, 'features', split), name, '.npy', path.join(root, splitFile(split)));
      if (!fs.existsSync(file)) {
        add({ severity: 'error', kind: 'missing-features', file, video: name, message: `missing: the video is listed in ${splitFile(split)} but has no features file` });
        continue;
      }
      let shape: number[];
      try {
        const h = readNpyHeader(file);
        shape = h.shape;
        if (h.fileBytes < h.expectedBytes) {
          add({ severity: 'error', kind: 'bad-features', file, video: name, message: `truncated: shape (${shape.join(', ')}) needs ${h.expectedBytes} bytes, the file has ${h.fileBytes}` });
          continue;
        }
      } catch (e) {
        add({ severity: 'error', kind: 'bad-features', file, video: name, message: stripFile((e as Error).message, file) });
        continue;
      }
      if (shape.length !== 2 || shape[0] < 1 || shape[1] < 1) {
        add({ severity: 'error', kind: 'bad-features', file, video: name, field: 'shape', message: `features must be [T, D] with T, D >= 1, found [${shape.join(', ')}]` });
        continue;
      }
      const [T, D] = shape;
      const over = overLimit('featureDim', D) ?? overLimit('snippets', T);
      if (over) {
        add({ severity: 'error', kind: 'bad-features', file, video: name, field: 'shape', message: `[${T}, ${D}]: ${overLimit('featureDim', D) ? 'D' : 'T'} must be ${over}` });
        continue;
      }
      if (dim === undefined) {
        dim = D;
        dimFile = file;
        summary.dim = D;
        summary.dimSource = `the width of ${file}`;
      }
      if (D !== dim) {
        const against = opts.dim !== undefined ? `--dim ${dim}` : `the width ${dim} of ${dimFile}`;
        add({ severity: 'error', kind: 'feature-width', file, video: name, field: 'shape', message: `feature width ${D} does not match ${against}` });
        continue;
      }
      s.withFeatures++;
      s.snippets += T;
      if (v) {
        const expected = (v.duration * config.featureFps) / config.snippetFrames;
        const off = Math.abs(T - expected);
        const what = `T = ${T} feature rows, but duration ${fmt(v.duration)} s at ${config.featureFps} fps in snippets of ${config.snippetFrames} frames gives ${fmt(expected)}`;
        if (expected > 0 && (T > 2 * expected + LENGTH_SLACK || T < expected / 2 - LENGTH_SLACK))
          add({ severity: 'error', kind: 'feature-length', file, video: name, field: 'shape', message: `${what} (more than a factor 2 off: are the features at another rate than featureFps / snippetFrames?)` });
        else if (off > Math.max(LENGTH_SLACK, tol * expected))
          add({ severity: 'warning', kind: 'feature-length', file, video: name, field: 'shape', message: `${what} (tolerance: max(${LENGTH_SLACK} snippets, ${Math.round(tol * 100)} %))` });
      }
    }
  }

  // ---- point labels ----------------------------------------------------------------------------------
  const pointFile = path.join(root, POINT_FILE);
  let points: PointLabelsFile | undefined;
  try {
    points = readPointLabels(pointFile);
  } catch (e) {
    const m = (e as Error).message;
    const at = new RegExp(`^${pointFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+): `).exec(m);
    add({ severity: 'error', kind: 'file', file: pointFile, line: at ? Number(at[1]) : undefined, message: at ? m.slice(at[0].length) : stripFile(m, pointFile) });
  }
  const rows = points?.rows ?? [];
  const pointsRead = points !== undefined;
  const pointsOfVideo = new Map<string, number>();
  const unknownVideos = new Set<string>();
  for (const r of rows) {
    const v = gt.get(r.video);
    if (!v) {
      unknownVideos.add(r.video);
      continue;
    }
    pointsOfVideo.set(r.video, (pointsOfVideo.get(r.video) ?? 0) + 1);
    const split = inSplit.get(r.video);
    if (split && summary.splits[split]) summary.splits[split]!.points++;
    if (!known.has(r.label)) {
      add({ severity: 'error', kind: 'unknown-class', file: pointFile, line: r.line, video: r.video, field: 'class', message: `"${r.label}" is not among the ${classes.length} classes (${preview(classes)})` });
      continue;
    }
    summary.perClass[r.label].points++;
    const lastFrame = v.duration * v.fps;
    if (r.frame > lastFrame + 1) {
      add({ severity: 'error', kind: 'point-outside', file: pointFile, line: r.line, video: r.video, field: 'point', message: `frame ${r.frame} is outside the video (frames 0 to ${fmt(lastFrame)}: ${fmt(v.duration)} s at ${v.fps} fps)` });
      continue;
    }
    const t = r.frame / v.fps;
    const slack = 1 / v.fps;
    if (v.annotations.length && !v.annotations.some((a) => a.label === r.label && t >= Math.min(...a.segment) - slack && t <= Math.max(...a.segment) + slack))
      add({ severity: 'warning', kind: 'point-off-instance', file: pointFile, line: r.line, video: r.video, field: 'point', message: `frame ${r.frame} (${fmt(t)} s) is inside no ground-truth instance of class "${r.label}"` });
    if (r.startFrame !== undefined && r.stopFrame !== undefined && (r.frame < r.startFrame - 1 || r.frame > r.stopFrame + 1))
      add({ severity: 'warning', kind: 'point-off-instance', file: pointFile, line: r.line, video: r.video, field: 'point', message: `frame ${r.frame} is outside its own start_frame..stop_frame ${r.startFrame}..${r.stopFrame}` });
  }
  if (unknownVideos.size)
    add({ severity: 'warning', kind: 'unknown-video', file: pointFile, message: `${unknownVideos.size} video(s) of the point labels are not in ${gtFile} (their rows are ignored): ${preview([...unknownVideos])}` });
  for (const name of pointsRead ? lists.get('train') ?? [] : []) {
    if (gt.has(name) && !pointsOfVideo.has(name) && (gt.get(name)!.annotations.length > 0))
      add({ severity: 'warning', kind: 'no-points', file: pointFile, video: name, message: 'training video without any point label (it is trained on as background only)' });
  }
  const trainInstances = summary.splits.train?.instances ?? 0;
  summary.pointsPerInstance = trainInstances > 0 ? (summary.splits.train?.points ?? 0) / trainInstances : 0;

  // ---- ambiguous segments ------------------------------------------------------------------------------
  const ambFile = path.join(root, AMBIGUOUS_FILE);
  let ambiguous: AmbiguousSegments | undefined = new Map();
  if (fs.existsSync(ambFile)) {
    try {
      ambiguous = readAmbiguous(ambFile); // throws, naming the line, on a line that does not parse or a reversed segment
      const unknownAmb = new Set<string>();
      for (const [video, segs] of ambiguous) {
        summary.ambiguousSegments += segs.length;
        if (!gt.has(video)) unknownAmb.add(video);
      }
      if (unknownAmb.size) add({ severity: 'warning', kind: 'ambiguous', file: ambFile, message: `${unknownAmb.size} video(s) not in ${gtFile}: ${preview([...unknownAmb])}` });
    } catch (e) {
      ambiguous = undefined;
      const m = (e as Error).message;
      const at = new RegExp(`^${ambFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+): `).exec(m);
      add({ severity: 'error', kind: 'ambiguous', file: ambFile, line: at ? Number(at[1]) : undefined, message: at ? m.slice(at[0].length) : stripFile(m, ambFile) });
    }
  }
  if (points && ambiguous && lists.size === splits.length) files = { gtFile, gt, lists, pointFile, points, ambiguousFile: ambFile, ambiguous };
  return result();
}

/** "file: message" -> "message" (the file is printed once, in front). */
function stripFile(message: string, file: string): string {
  return message.startsWith(`${file}:`) ? message.slice(file.length + 1).trim() : message;
}

function mostCommon(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = '';
  let n = 0;
  for (const [v, c] of counts) if (c > n) [best, n] = [v, c];
  return best;
}

/** The summary as a few lines of text. */
export function formatCheckSummary(r: CheckResult): string {
  const s = r.summary;
  const lines: string[] = [`dataset ${s.root}`];
  lines.push(`  features: D = ${s.dim ?? '?'}${s.dimSource ? ` (${s.dimSource})` : ''}`);
  for (const [split, x] of Object.entries(s.splits)) {
    lines.push(
      `  ${split.padEnd(5)} (subset "${x!.subset}"): ${x!.listed} videos listed, ${x!.withFeatures} with features, ${x!.snippets} snippets, ` +
        `${x!.instances} ground-truth instances, ${x!.points} point labels`,
    );
  }
  lines.push(`  points per training instance: ${s.pointsPerInstance.toFixed(2)}${s.ambiguousSegments ? `; ${s.ambiguousSegments} ambiguous segments` : ''}`);
  const w = Math.max(5, ...s.classes.map((c) => c.length));
  lines.push(`  ${'class'.padEnd(w)}  train  test  points`);
  for (const c of s.classes) {
    const pc = s.perClass[c];
    lines.push(`  ${c.padEnd(w)}  ${String(pc.train).padStart(5)}  ${String(pc.test).padStart(4)}  ${String(pc.points).padStart(6)}`);
  }
  lines.push(`${r.errors} error(s), ${r.warnings} warning(s)`);
  return lines.join('\n');
}
