/**
 * `pstal detect --model RUN --features video.npy [--features ...] [--out detections.json] [--plot DIR]
 * [--gt gt_full.json]`: both stages' best checkpoints of RUN applied to feature files of videos that
 * were never in a split. Writes the ActivityNet results format (label, score, segment in seconds);
 * --plot writes DIR/<video>.svg (and .png when @resvg/resvg-js is installed): scores over time,
 * detections, and the ground truth when --gt knows the video.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, CliError, OptionSpec } from './args';
import { readNpy, assertFiniteFeatures } from '../data/npy';
import { readGroundTruth } from '../data/dataset';
import { loadHrPro, detect } from '../models/hrpro/detect';
import { writeFileAtomic } from '../util/fs';
import type { DetectionResults, Segment } from '../eval/detection';
import { plotVideo } from '../plot/video';

export const DETECT_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', describe: 'a run folder trained by `pstal run` (or stage 1 alone by `pstal train`)', required: true },
  features: { type: 'list', describe: 'a video\'s [T, D] feature file (.npy); repeat for several videos', required: true },
  out: { type: 'string', describe: 'results file (ActivityNet format); default: print to stdout' },
  plot: { type: 'string', describe: 'folder for one picture per video (SVG, and PNG when @resvg/resvg-js is installed)' },
  gt: { type: 'string', describe: 'a gt_full.json whose annotations of these videos are drawn in the plots' },
  top: { type: 'number', describe: 'keep the N best detections a video (default: all)' },
  device: { type: 'string', describe: "'cpu' or 'cuda'", default: 'cpu' },
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('detect', argv, DETECT_OPTIONS);
  if (!a) return 0;
  const files = a.features as string[];
  if (a.top !== undefined && !(Number.isInteger(a.top as number) && (a.top as number) >= 1)) throw new CliError(`--top must be a positive integer, received ${a.top}`);
  // one entry a video in the results: two files of one name would overwrite each other's detections
  const byName = new Map<string, string>();
  for (const f of files) {
    const n = path.basename(f).replace(/\.npy$/, '');
    if (byName.has(n)) throw new CliError(`--features ${byName.get(n)} and ${f} are both video '${n}' (the file name without .npy names the video in the results)`);
    byName.set(n, f);
  }
  // the ground truth is checked field by field (errors name the file, video and field)
  const gt = a.gt ? readGroundTruth(a.gt as string) : new Map<string, { annotations: { label: string; segment: [number, number] }[] }>();
  const model = loadHrPro(a.model as string, { device: a.device as string });
  try {
    const results: DetectionResults = {};
    for (const file of files) {
      const name = path.basename(file).replace(/\.npy$/, '');
      const arr = readNpy(file);
      if (arr.shape.length !== 2 || arr.shape[1] !== model.featureDim)
        throw new Error(`${file}: features of shape [${arr.shape.join(', ')}] do not fit the model (expected [T, ${model.featureDim}])`);
      if (arr.shape[0] === 0) throw new Error(`${file}: no rows (shape [0, ${arr.shape[1]}]); a video needs at least one snippet of features`);
      assertFiniteFeatures(file, arr.data, model.featureDim);
      const r = detect(model, { data: arr.data, shape: arr.shape }, { name });
      const dets = a.top ? r.detections.slice(0, a.top as number) : r.detections;
      results[name] = dets;
      console.error(`${name}: ${arr.shape[0]} snippets, ${r.detections.length} detections` + (dets[0] ? `, best ${dets[0].label} ${dets[0].segment[0].toFixed(1)}-${dets[0].segment[1].toFixed(1)} s (${dets[0].score.toFixed(3)})` : ''));
      if (a.plot) {
        fs.mkdirSync(a.plot as string, { recursive: true });
        const known: Segment[] | undefined = gt.get(name)?.annotations.map((g) => ({ label: g.label, segment: [g.segment[0], g.segment[1]] }));
        const written = plotVideo(path.join(a.plot as string, name), name, r, model.classNames, model.cfg1.secondsPerSnippet, known);
        console.error(`  plot: ${written.join(', ')}`);
      }
    }
    const json = JSON.stringify({ version: 'VERSION 1.3', results, external_data: { used: true, details: `pstal detect, model ${model.run}` } });
    if (a.out) writeFileAtomic(a.out as string, json);
    else console.log(json);
    return 0;
  } finally {
    model.dispose();
  }
}
