/**
 * `pstal detect --model RUN --features video.npy [--features ...] [--out detections.json] [--plot DIR]
 * [--gt gt_full.json]`: both stages' best checkpoints of RUN applied to feature files of videos that
 * were never in a split. Writes the ActivityNet results format (label, score, segment in seconds);
 * --plot writes DIR/<video>.svg (and .png when @resvg/resvg-js is installed): scores over time,
 * detections, and the ground truth when --gt knows the video.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, CliError, OptionSpec, Parsed } from './args';
import { SHARED, applyComputeOptions } from './options';
import { loadTspNet, detect as tspnetDetectVideo } from '../models/tspnet/run';
import { tspnetPaths } from '../models/tspnet/checkpoint';
import { BaseProposal, checkBaseProposal } from '../models/tspnet/proposals';
import { readNpy, assertFiniteFeatures } from '../data/npy';
import { GroundTruthFile, readGroundTruth } from '../formats/ground_truth';
import { DetectionResults, resultsText, writeResults } from '../formats/results';
import { emptyRecord, isObject } from '../formats/text';
import { loadHrPro, detect } from '../models/hrpro/detect';
import type { Segment } from '../eval/detection';
import { plotVideo } from '../plot/video';
import { readJson } from '../formats/text';
import { safeName, videoFile } from '../util/paths';
import { refuseOutputOverInputs, runFiles } from './outputs';

export const DETECT_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', describe: 'a run folder trained by `pstal run` (or stage 1 alone by `pstal train`)', required: true },
  features: { type: 'list', describe: 'a video\'s [T, D] feature file (.npy); repeat for several videos', required: true },
  out: { type: 'string', describe: 'results file (ActivityNet format); default: print to stdout' },
  plot: { type: 'string', describe: 'folder for one picture per video (SVG, and PNG when @resvg/resvg-js is installed)' },
  gt: { type: 'string', describe: 'a gt_full.json whose annotations of these videos are drawn in the plots' },
  top: { type: 'number', describe: 'keep the N best detections a video (default: all)' },
  device: SHARED.device,
  threads: SHARED.threads,
  precision: SHARED.precision,
  proposals: { type: 'string', describe: "a TSPNet run trained on proposals files: the new videos' base proposals (ActivityNet JSON, seconds)" },
};

/** A new video's features, checked for the model (HR-Pro or TSPNet): [T >= 1, D], finite values. */
function readFeatures(file: string, featureDim: number): ReturnType<typeof readNpy> {
  const arr = readNpy(file);
  if (arr.shape.length !== 2 || arr.shape[1] !== featureDim)
    throw new Error(`${file}: features of shape [${arr.shape.join(', ')}] do not fit the model (expected [T, ${featureDim}])`);
  if (arr.shape[0] === 0) throw new Error(`${file}: no rows (shape [0, ${arr.shape[1]}]); a video needs at least one snippet of features`);
  assertFiniteFeatures(file, arr.data, featureDim);
  return arr;
}

/** The video a feature file holds: its file name without .npy (`..npy` or `.npy` name no video). */
function videoName(file: string): string {
  try {
    return safeName(path.basename(file).replace(/\.npy$/, ''), `--features ${file}`);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/**
 * --out must not be one of the command's inputs (a --features, --gt or --proposals file) nor a file
 * of the model's run folder: the results would replace it.
 */
function refuseInputsAsOutput(a: Parsed): void {
  if (a.out === undefined) return;
  const run = a.model as string;
  refuseOutputOverInputs('--out', a.out as string, [
    ...(a.features as string[]).map((f) => ['--features', f] as [string, string]),
    ...(a.gt !== undefined ? [['--gt', a.gt as string] as [string, string]] : []),
    ...(a.proposals !== undefined ? [['--proposals', a.proposals as string] as [string, string]] : []),
    ...runFiles(run).map((f) => [`a file of the --model run folder`, f] as [string, string]),
  ]);
}

/** The ground truth of a video for its plot, when --gt gives it. */
function knownSegments(gt: GroundTruthFile, name: string): Segment[] | undefined {
  return gt.get(name)?.annotations.map((g) => ({ label: g.label, segment: [g.segment[0], g.segment[1]] }));
}

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('detect', argv, DETECT_OPTIONS);
  if (!a) return 0;
  applyComputeOptions(a);
  const files = a.features as string[];
  if (a.top !== undefined && !(Number.isInteger(a.top as number) && (a.top as number) >= 1)) throw new CliError(`--top must be a positive integer, received ${a.top}`);
  // one entry a video in the results: two files of one name would overwrite each other's detections
  const byName = new Map<string, string>();
  for (const f of files) {
    const n = videoName(f);
    if (byName.has(n)) throw new CliError(`--features ${byName.get(n)} and ${f} are both video '${n}' (the file name without .npy names the video in the results)`);
    byName.set(n, f);
  }
  refuseInputsAsOutput(a);
  // the ground truth is checked field by field (errors name the file, video and field)
  const gt: GroundTruthFile = a.gt ? readGroundTruth(a.gt as string) : new Map();
  if (fs.existsSync(tspnetPaths(a.model as string).best)) return detectTspNet(a, files, gt);
  if (a.proposals !== undefined) throw new CliError('--proposals is for TSPNet runs (pstal train --method tspnet)');
  const model = loadHrPro(a.model as string, { device: a.device as string });
  try {
    const results: DetectionResults = emptyRecord();
    for (const file of files) {
      const name = videoName(file);
      const arr = readFeatures(file, model.featureDim);
      const r = detect(model, { data: arr.data, shape: arr.shape }, { name });
      const dets = a.top ? r.detections.slice(0, a.top as number) : r.detections;
      results[name] = dets;
      console.error(`${name}: ${arr.shape[0]} snippets, ${r.detections.length} detections` + (dets[0] ? `, best ${dets[0].label} ${dets[0].segment[0].toFixed(1)}-${dets[0].segment[1].toFixed(1)} s (${dets[0].score.toFixed(3)})` : ''));
      if (a.plot) {
        fs.mkdirSync(a.plot as string, { recursive: true });
        const known = knownSegments(gt, name);
        const written = plotVideo(videoFile(a.plot as string, name, '', `--features ${file}`), name, r, model.classNames, model.cfg1.secondsPerSnippet, known);
        console.error(`  plot: ${written.join(', ')}`);
      }
    }
    const details = `pstal detect, model ${model.run}`;
    if (a.out) writeResults(a.out as string, results, details);
    else console.log(resultsText(results, details));
    return 0;
  } finally {
    model.dispose();
  }
}

/** `pstal detect` with a TSPNet run: the base (its HR-Pro run, or --proposals) then the plug-in. */
function detectTspNet(a: Parsed, files: string[], gt: GroundTruthFile): number {
  const model = loadTspNet(a.model as string, { device: a.device as string });
  try {
    let given: Record<string, unknown> | undefined;
    if (a.proposals !== undefined) {
      const p = readJson(a.proposals as string, '--proposals');
      if (!isObject(p) || !isObject(p.results)) throw new CliError(`--proposals ${a.proposals}: expected {"results": {video: [{"segment": [s, e]}]}}`);
      given = p.results;
    }
    const known = new Set(model.classNames);
    const results: DetectionResults = emptyRecord();
    for (const file of files) {
      const name = videoName(file);
      const arr = readFeatures(file, model.featureDim);
      let proposals: BaseProposal[] | undefined;
      if (given) {
        // own keys only: a video named "constructor" is not Object.prototype's
        const list = Object.hasOwn(given, name) ? given[name] : undefined;
        if (!Array.isArray(list) || !list.length) throw new Error(`${a.proposals}: no proposals for video ${name}`);
        // the checks of the training's proposals files (numbers, start <= end, start >= 0, known labels, numeric scores)
        proposals = list.map((q, i) => checkBaseProposal(q, `${a.proposals}: results["${name}"][${i}]`, known));
      }
      const r = tspnetDetectVideo(model, { data: arr.data, shape: arr.shape }, { name, proposals });
      const dets = a.top ? r.detections.slice(0, a.top as number) : r.detections;
      results[name] = dets;
      console.error(`${name}: ${arr.shape[0]} snippets, ${r.proposals} base proposals, ${r.detections.length} detections` + (dets[0] ? `, best ${dets[0].label} ${dets[0].segment[0].toFixed(1)}-${dets[0].segment[1].toFixed(1)} s (${dets[0].score.toFixed(3)})` : ''));
      if (a.plot) {
        if (!r.scores) throw new CliError('--plot needs the HR-Pro base run (its stage-1 scores are drawn): not available with --proposals');
        fs.mkdirSync(a.plot as string, { recursive: true });
        const known = knownSegments(gt, name);
        const written = plotVideo(videoFile(a.plot as string, name, '', `--features ${file}`), name, { detections: dets, scores: r.scores }, model.classNames, model.cfg.snippetFrames / model.cfg.featureFps, known);
        console.error(`  plot: ${written.join(', ')}`);
      }
    }
    const details = `pstal detect, TSPNet model ${model.run}`;
    if (a.out) writeResults(a.out as string, results, details);
    else console.log(resultsText(results, details));
    return 0;
  } finally {
    model.dispose();
  }
}
