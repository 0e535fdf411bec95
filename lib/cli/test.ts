/**
 * `pstal test --model RUN --data DIR [--stage 1|2] [--config NAME] [--out-results FILE]`: a run's best
 * checkpoint (trained, or imported with `pstal import`) on the test split of DIR, through the test
 * passes training uses (lib/models/hrpro/evaluate_run.ts). Prints the mAP table (per tIoU and the three
 * averages) on stdout; --out-results writes the detections (ActivityNet format).
 */
import { parseArgs, CliError, OptionSpec, PRECISION_OPTION, applyPrecision } from './args';
import { progressCallback } from '../util/progress';
import { loadConfig, loadDataset } from '../data';
import { evaluateRun } from '../models/hrpro/evaluate_run';
import { writeFileAtomic } from '../util/fs';
import { setNumThreads } from '../runtime/native';
import * as fs from 'fs';
import * as path from 'path';

export const TEST_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', describe: 'a run folder (pstal run / train / import)', required: true },
  data: { type: 'string', describe: 'dataset folder in the standard layout; its test split is scored', required: true },
  stage: { type: 'number', describe: 'which best checkpoint: 1, or 2 (default: 2 when RUN has one)' },
  config: { type: 'string', describe: 'dataset config: thumos14, gtea, beoid, activitynet13, or a YAML file', default: 'thumos14' },
  'out-results': { type: 'string', describe: 'also write the test detections to this file (ActivityNet results format)' },
  device: { type: 'string', describe: "'cpu' or 'cuda'", default: 'cpu' },
  threads: { type: 'number', describe: 'CPU threads (default: all cores, or PSTAL_NUM_THREADS)' },
  precision: PRECISION_OPTION,
};

export const TEST_ABOUT = `Stage 2 scores the stage-1 proposals of RUN/proposals.json when present, else those of RUN's
stage-1 checkpoint. The feature width is the run's; tIoUs, blocked videos and ambiguous segments
are the config's.

examples:
  pstal test --model runs/t256 --data data/thumos14-d256
  pstal test --model runs/reference --data data/thumos14 --stage 1 --out-results stage1_test.json`;

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('test', argv, TEST_OPTIONS, TEST_ABOUT);
  if (!a) return 0;
  if (a.stage !== undefined && a.stage !== 1 && a.stage !== 2) throw new CliError(`--stage must be 1 or 2, received ${a.stage}`);
  if (a.threads !== undefined) setNumThreads(a.threads as number);
  applyPrecision(a.precision, a.device);
  const run = a.model as string;
  // the run's feature width (config.json, or stage2_config.json for a stage-2-only run)
  let featureDim: number | undefined;
  for (const f of ['config.json', 'stage2_config.json']) {
    const file = path.join(run, f);
    if (!fs.existsSync(file)) continue;
    try {
      featureDim = (JSON.parse(fs.readFileSync(file, 'utf8')) as { featureDim?: number }).featureDim;
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    if (featureDim) break;
  }
  if (!featureDim) throw new Error(`${run}: no run here (no config.json or stage2_config.json with featureDim); train or import one first`);
  const config = loadConfig(a.config as string, { featureDim });
  const dataset = loadDataset(a.data as string, config, { splits: ['test'], onWarning: (m) => console.error(`warning: ${m}`) });
  const r = evaluateRun({
    run,
    dataset,
    stage: a.stage as 1 | 2 | undefined,
    device: a.device as string,
    log: (s) => console.error(s),
    onVideo: progressCallback('test', { unit: 'videos' }),
  });
  console.error(`stage ${r.stage}: best checkpoint of ${run} on the ${dataset.test.length} test videos of ${a.data} (${r.seconds.toFixed(1)} s)`);
  console.log(r.table);
  if (a['out-results']) {
    writeFileAtomic(a['out-results'] as string, JSON.stringify({ version: 'VERSION 1.3', results: r.results, external_data: { used: true, details: `pstal test, model ${run}, stage ${r.stage}` } }));
    console.error(`detections: ${a['out-results']}`);
  }
  return 0;
}
