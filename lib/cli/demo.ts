/**
 * `pstal demo [--out DIR]`: the project's main job on an embedded default. Synthesizes a small
 * THUMOS-like dataset (invented annotations: 20 classes, 100 training and 100 test videos of about a
 * minute, D = 64, moderate realism), runs HR-Pro end to end on the CPU (stage 1, ranking, stage 2,
 * evaluation), prints both stages' tables, and writes timeline plots of a few test videos.
 * The schedule is shortened for the small problem (see DEMO below); a few minutes on 2 cores.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, OptionSpec } from './args';
import { withSigint } from './training';
import { synthesizeDataset, SynthKnobs } from '../data/synth';
import { loadConfig, loadDataset } from '../data';
import { runHrPro } from '../models/hrpro/run';
import { loadHrPro, detect } from '../models/hrpro/detect';
import { plotVideo } from '../plot/video';
import { setNumThreads } from '../runtime/native';
import { videoFile } from '../util/paths';
import { splitFile } from '../formats/splits';

export const DEMO = {
  dim: 64,
  videos: 200,
  seed: 0,
  /** shorter videos, and half the default confounders (scene drift, latent noise): the default
   *  realism is calibrated for D >= 256 and the full THUMOS14 set */
  knobs: { durationScale: 0.3, noiseStd: 0.25, sceneStrength: 0.5, latentNoiseStrength: 0.15, classCorrelation: 0.2 } as Partial<SynthKnobs>,
  /** D = 64 needs larger steps than the reference's (lr 1e-4 / 5e-5 are tuned for D = 2048) */
  stage1: { iterations: 500, testEvery: 100, batchSize: 8, lr: 1e-3 },
  stage2: { epochs: 15, testEvery: 5, batchSize: 10, lr: 1e-3 },
  plots: 3,
};

export const DEMO_OPTIONS: Record<string, OptionSpec> = {
  out: { type: 'string', describe: 'folder for the dataset, the run and the plots', default: 'pstal-demo' },
  threads: { type: 'number', describe: 'CPU threads (default: all cores)' },
  quiet: { type: 'boolean', describe: 'no progress bars' },
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('demo', argv, DEMO_OPTIONS);
  if (!a) return 0;
  if (a.threads !== undefined) setNumThreads(a.threads as number);
  const out = path.resolve(a.out as string);
  const dataDir = path.join(out, 'data');
  const runDir = path.join(out, 'run');
  const plotDir = path.join(out, 'plots');
  const t0 = Date.now();
  console.error(`pstal demo: everything goes to ${out}`);
  if (!fs.existsSync(path.join(dataDir, 'gt_full.json'))) {
    const s = await synthesizeDataset({ out: dataDir, dim: DEMO.dim, seed: DEMO.seed, videos: DEMO.videos, knobs: DEMO.knobs });
    console.error(`1/4 synthesized ${s.train} training and ${s.test} test videos (${s.snippets} snippets, D = ${s.dim}, ${s.classes.length} classes) in ${s.seconds.toFixed(1)} s`);
  } else console.error(`1/4 dataset already in ${dataDir}`);
  const dataset = loadDataset(dataDir, loadConfig('thumos14', { featureDim: DEMO.dim }));
  console.error('2/4 HR-Pro stage 1 and ranking, 3/4 stage 2 (tables below; Ctrl-C stops, rerunning the demo resumes)');
  const r = await withSigint((signal) =>
    runHrPro({ dataset, out: runDir, stage1: { ...DEMO.stage1, seed: DEMO.seed }, stage2: { ...DEMO.stage2, seed: DEMO.seed }, resume: true, quiet: Boolean(a.quiet), signal }),
  );
  if (r.interrupted) return 130;
  const model = loadHrPro(runDir);
  const written: string[] = [];
  try {
    for (const v of dataset.test.slice(0, DEMO.plots)) {
      const d = detect(model, v.features, { name: v.name });
      written.push(...plotVideo(videoFile(plotDir, v.name, '', path.join(dataDir, splitFile('test'))), `${v.name}: detections of HR-Pro (pstal demo)`, d, model.classNames, model.cfg1.secondsPerSnippet, v.gt));
    }
  } finally {
    model.dispose();
  }
  console.error(`4/4 plots of ${DEMO.plots} test videos: ${written.map((f) => path.relative(process.cwd(), f)).join(', ')}`);
  console.error(`\npstal demo: done in ${((Date.now() - t0) / 1000).toFixed(0)} s. Run folder: ${runDir} (metrics, checkpoints, results, proposals.json)`);
  console.error(`try: pstal detect --model ${path.relative(process.cwd(), runDir) || '.'} --features ${path.relative(process.cwd(), path.join(dataDir, 'features', 'test', dataset.test[0].name + '.npy'))} --plot plots`);
  return 0;
}
