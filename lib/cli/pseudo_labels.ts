/**
 * `pstal pseudo-labels --model RUN --data DIR --out FILE [--method hrpro|hrpro+tspnet] [--config NAME]
 * [--with-test-gt] [--out-results FILE]`: full pseudo labels of the TRAINING videos from a trained
 * run, for training a fully supervised detector (docs/pseudo-labels.md). The run's detections on each
 * training video are kept where they hold a labelled point of their class, one instance a point
 * (lib/models/hrpro/pseudo_gt.ts), and written as gt_full.json (lib/formats/ground_truth.ts) under the
 * videos' training subset name. --with-test-gt copies the test split's true entries from DIR's
 * gt_full.json, for the detector's evaluation. The pseudo labels' quality against the true training
 * ground truth (mAP, recall and precision at each tIoU of the config) is printed on stderr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, CliError, OptionSpec } from './args';
import { SHARED, applyComputeOptions } from './options';
import { progressCallback } from '../util/progress';
import { loadConfig, loadDataset } from '../data';
import type { VideoRecord } from '../data';
import { GroundTruthFile, GtVideo, readGroundTruth, writeGroundTruth } from '../formats/ground_truth';
import { DetectionResults, writeResults } from '../formats/results';
import { readSplit, splitFile } from '../formats/splits';
import { emptyRecord } from '../formats/text';
import { subsetGroundTruth } from '../eval/detection';
import type { Detection } from '../eval/detection';
import { loadHrPro, detect as hrproDetect } from '../models/hrpro/detect';
import { loadTspNet, detect as tspnetDetect } from '../models/tspnet/run';
import { tspnetPaths } from '../models/tspnet/checkpoint';
import { TSPNET_SUBFOLDER } from '../models/tspnet/pipeline';
import { stage1Paths } from '../models/hrpro/checkpoint';
import { PseudoInstance, PseudoSharing, formatPseudoQuality, pseudoQuality, selectPseudoInstances } from '../models/hrpro/pseudo_gt';

export const PSEUDO_LABELS_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', describe: 'a run folder trained by `pstal run` (hrpro+tspnet: the run whose TSPNet plug-in is in RUN/tspnet)', required: true },
  data: { ...SHARED.data, describe: 'the dataset the run was trained on (standard layout); its training split is labelled' },
  out: { type: 'string', describe: 'the pseudo-label file to write (gt_full.json format)', required: true },
  method: { type: 'string', describe: "whose detections: 'hrpro' (RUN's stage 2, or stage 1 alone) or 'hrpro+tspnet' (RUN/tspnet)", default: 'hrpro' },
  config: SHARED.config,
  sharing: {
    type: 'string',
    describe: "a detection holding several points of its class: 'exclusive' (each point prefers one holding no other), 'best' (each point its best, a shared one kept once) or 'match' (one-to-one by score)",
    default: 'exclusive',
  },
  'with-test-gt': { type: 'boolean', describe: "also copy the test split's true entries from DATA/gt_full.json (what the detector is evaluated on)" },
  'out-results': { type: 'string', describe: 'also write the pseudo instances with their detection scores (ActivityNet results format)' },
  json: { type: 'boolean', describe: 'print the counts and the quality as one JSON object on stdout' },
  quiet: { type: 'boolean', describe: 'no progress bar' },
  device: SHARED.device,
  threads: SHARED.threads,
  precision: SHARED.precision,
};

export const PSEUDO_LABELS_ABOUT = `A detection holds a point when the classes agree and the point's time lies in its segment. Each
point takes the best-scoring detection holding it and no other point of its class, else the best
holding it (kept once when several points share it; --sharing picks another rule); a point without
a detection gets no instance. Training videos without any instance are left out of the file. The
quality table compares the pseudo labels with DATA's true training ground truth: mAP (pseudo
instances as detections scored by their detection score), recall (true instances matched one-to-one
at tIoU >= t) and precision (pseudo instances so matched).`;

const METHODS = ['hrpro', 'hrpro+tspnet'];
const SHARING: PseudoSharing[] = ['exclusive', 'best', 'match'];

/** A detector of one video: its detections in seconds, clipped to the video. */
type VideoDetector = (v: VideoRecord) => Detection[];

function openModel(method: string, run: string, device: string): { classNames: string[]; featureDim: number; detect: VideoDetector; dispose(): void } {
  if (!fs.existsSync(run) || !fs.statSync(run).isDirectory()) throw new CliError(`--model ${run}: no such run folder`);
  if (method === 'hrpro') {
    if (!fs.existsSync(stage1Paths(run).best)) throw new CliError(`--model ${run}: no HR-Pro checkpoint (${path.basename(stage1Paths(run).best)}); train the run first (pstal run)`);
    const m = loadHrPro(run, { device });
    return {
      classNames: m.classNames,
      featureDim: m.featureDim,
      detect: (v) => hrproDetect(m, { data: v.features, shape: [v.T, v.D] }, { name: v.name }).detections,
      dispose: () => m.dispose(),
    };
  }
  const dir = path.join(run, TSPNET_SUBFOLDER);
  if (!fs.existsSync(tspnetPaths(dir).best))
    throw new CliError(`--method hrpro+tspnet: ${dir} holds no TSPNet checkpoint (${path.basename(tspnetPaths(dir).best)}); train it with pstal run --method hrpro+tspnet`);
  const m = loadTspNet(dir, { device });
  if (!m.base) {
    m.dispose();
    throw new CliError(`--method hrpro+tspnet: ${dir} was trained on proposals files, not on an HR-Pro run: it has no base to detect with`);
  }
  const end = (v: VideoRecord): number => v.T * m.base!.cfg1.secondsPerSnippet;
  return {
    classNames: m.classNames,
    featureDim: m.featureDim,
    // TSPNet's segments are not clipped by its detect(): clipped here as HR-Pro's are
    detect: (v) =>
      tspnetDetect(m, { data: v.features, shape: [v.T, v.D] }, { name: v.name }).detections.flatMap((d) => {
        const s = Math.min(Math.max(d.segment[0], 0), end(v));
        const e = Math.min(Math.max(d.segment[1], 0), end(v));
        return e > s ? [{ ...d, segment: [s, e] as [number, number] }] : [];
      }),
    dispose: () => m.dispose(),
  };
}

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('pseudo-labels', argv, PSEUDO_LABELS_OPTIONS, PSEUDO_LABELS_ABOUT);
  if (!a) return 0;
  const method = a.method as string;
  if (!METHODS.includes(method)) throw new CliError(`--method must be 'hrpro' or 'hrpro+tspnet', received '${method}'`);
  const sharing = a.sharing as PseudoSharing;
  if (!SHARING.includes(sharing)) throw new CliError(`--sharing must be 'exclusive', 'best' or 'match', received '${sharing}'`);
  const data = a.data as string;
  if (!fs.existsSync(data) || !fs.statSync(data).isDirectory()) throw new CliError(`--data ${data}: no such dataset folder`);
  const out = a.out as string;
  const outDir = path.dirname(path.resolve(out));
  if (!fs.existsSync(outDir)) throw new CliError(`--out ${out}: the folder ${path.dirname(out)} does not exist`);
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new CliError(`--out ${out} is a folder; name the file to write (e.g. ${path.join(out, 'pseudo_gt.json')})`);
  if (path.resolve(out) === path.resolve(data, 'gt_full.json')) throw new CliError(`--out ${out} would overwrite the dataset's own ground truth`);
  const { device } = applyComputeOptions(a);

  const model = openModel(method, a.model as string, device);
  try {
    const config = loadConfig(a.config as string, { featureDim: model.featureDim });
    const dataset = loadDataset(data, config, { splits: ['train'], onWarning: (m) => console.error(`warning: ${m}`) });
    const known = [...model.classNames].sort().join('\n');
    if (known !== [...dataset.classNames].sort().join('\n'))
      throw new Error(`--model ${a.model}: the run's ${model.classNames.length} classes are not the ${dataset.classNames.length} classes of --data ${data} with --config ${a.config}`);
    if (dataset.train.length === 0) throw new Error(`--data ${data}: no training video to label (${splitFile('train')})`);
    // --with-test-gt: the test split's videos, read before the long pass
    const testNames = a['with-test-gt'] ? readSplit(path.join(data, splitFile('test'))) : [];
    const notInGt = testNames.filter((n) => !dataset.groundTruth.has(n));
    if (notInGt.length)
      console.error(`warning: --with-test-gt: ${notInGt.length} video(s) of ${splitFile('test')} not in ${dataset.gtFile}, not copied: ${notInGt.slice(0, 5).join(', ')}${notInGt.length > 5 ? ', ...' : ''}`);

    // label ids (THUMOS14's gt_full.json gives them; ActionFormer reads them) as the dataset has them
    const labelIds = new Map<string, number>();
    for (const v of dataset.groundTruth.values()) for (const g of v.annotations) if (g.labelId !== undefined && !labelIds.has(g.label)) labelIds.set(g.label, g.labelId);

    const onVideo = a.quiet ? undefined : progressCallback('pseudo-labels', { unit: 'videos' });
    const t0 = Date.now();
    const pseudo = new Map<string, PseudoInstance[]>();
    let points = 0;
    let served = 0;
    let detections = 0;
    dataset.train.forEach((v, i) => {
      // segments to the millisecond, rounded outwards so that each still holds its points
      const found = model.detect(v);
      detections += found.length;
      const instances = selectPseudoInstances(found, v.points, dataset.classNames, sharing).map((p) => ({
        ...p,
        segment: [Math.min(p.segment[0], Math.floor(p.segment[0] * 1000) / 1000), Math.max(p.segment[1], Math.ceil(p.segment[1] * 1000) / 1000)] as [number, number],
      }));
      pseudo.set(v.name, instances);
      points += v.points.length;
      for (const p of instances) served += p.points.length;
      onVideo?.(i + 1, dataset.train.length);
    });
    const seconds = (Date.now() - t0) / 1000;

    // the file: every training video with an instance, then (--with-test-gt) the test split's truth
    const file: GroundTruthFile = new Map();
    let left = 0;
    for (const v of dataset.train) {
      const list = pseudo.get(v.name)!;
      if (list.length === 0) {
        left++;
        continue;
      }
      const annotations = [...list]
        .sort((x, y) => x.segment[0] - y.segment[0] || x.segment[1] - y.segment[1])
        .map((p) => ({ label: p.label, segment: p.segment, labelId: labelIds.get(p.label) }));
      const entry: GtVideo = { subset: v.subset, duration: v.duration, fps: v.fps, annotations };
      file.set(v.name, entry);
    }
    let copied = 0;
    for (const name of testNames) {
      const g = dataset.groundTruth.get(name);
      if (!g) continue;
      if (pseudo.has(name)) console.error(`warning: ${name} is in both splits; its pseudo labels are kept, not its test ground truth`);
      else {
        file.set(name, g);
        copied++;
      }
    }
    writeGroundTruth(out, file);
    readGroundTruth(out); // what a reader of the file meets: checked before anything is reported

    const scored: DetectionResults = emptyRecord();
    // videos with instances only: the file's videos (a results file naming others is refused by pstal eval --gt FILE)
    for (const [name, list] of pseudo) if (list.length) scored[name] = list.map((p) => ({ label: p.label, score: p.score, segment: p.segment }));
    if (a['out-results']) writeResults(a['out-results'] as string, scored, `pstal pseudo-labels, model ${a.model}, method ${method}`);

    // quality against the true ground truth of the same training videos
    const truthFile: GroundTruthFile = new Map();
    for (const v of dataset.train) truthFile.set(v.name, { ...dataset.groundTruth.get(v.name)!, subset: 'train' });
    const q = pseudoQuality(subsetGroundTruth(truthFile, 'train', { file: dataset.gtFile }), scored, config.tiou);
    const instances = [...pseudo.values()].reduce((s, l) => s + l.length, 0);
    console.error(
      `pseudo-labels: ${dataset.train.length} training videos, ${detections} detections, ${points} points, ${served} served by ${instances} pseudo instances ` +
        `(${left} video(s) without one left out) in ${seconds.toFixed(1)} s` + (a['with-test-gt'] ? `; ${copied} test videos' ground truth copied` : '') + ` -> ${out}`,
    );
    console.error(`quality against the true training ground truth (${q.numTrue} instances), ${method}, --sharing ${sharing}:\n${formatPseudoQuality(q)}`);
    if (a.json)
      console.log(JSON.stringify({ out, method, sharing, model: a.model, videos: dataset.train.length, detections, points, served, instances, videosLeftOut: left, testVideosCopied: copied, ...q }));
    return 0;
  } finally {
    model.dispose();
  }
}
