/**
 * `pstal test --model RUN --data DIR [--stage 1|2] [--config NAME] [--out-results FILE]`: a run's best
 * checkpoint (trained, or imported with `pstal import`) on the test split of DIR, through the test
 * passes training uses (lib/models/hrpro/evaluate_run.ts). Prints the mAP table (per tIoU and the three
 * averages) on stdout; --out-results writes the detections (ActivityNet format).
 */
import { parseArgs, CliError, OptionSpec } from './args';
import { SHARED, applyComputeOptions } from './options';
import { progressCallback } from '../util/progress';
import { loadConfig, loadDataset } from '../data';
import { evaluateRun } from '../models/hrpro/evaluate_run';
import { evaluationJson } from '../eval/detection';
import { stage1Paths, stage2Paths } from '../models/hrpro/checkpoint';
import { readRunConfigIfPresent } from '../formats/run_config';
import { writeResults } from '../formats/results';

export const TEST_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', describe: 'a run folder (pstal run / train / import)', required: true },
  data: { ...SHARED.data, describe: 'dataset folder in the standard layout; its test split is scored' },
  stage: { type: 'number', describe: 'which best checkpoint: 1, or 2 (default: 2 when RUN has one)' },
  config: SHARED.config,
  'out-results': { type: 'string', describe: 'also write the test detections to this file (ActivityNet results format)' },
  json: SHARED.json,
  device: SHARED.device,
  threads: SHARED.threads,
  precision: SHARED.precision,
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
  const { device } = applyComputeOptions(a);
  const run = a.model as string;
  // the run's feature width (config.json, or stage2_config.json for a stage-2-only run)
  const recorded = [stage1Paths(run).config, stage2Paths(run).config].map(readRunConfigIfPresent).find((c) => c !== null);
  const featureDim = recorded?.featureDim;
  if (!featureDim) throw new Error(`${run}: no run here (no config.json or stage2_config.json with featureDim); train or import one first`);
  const config = loadConfig(a.config as string, { featureDim });
  const dataset = loadDataset(a.data as string, config, { splits: ['test'], onWarning: (m) => console.error(`warning: ${m}`) });
  const r = evaluateRun({
    run,
    dataset,
    stage: a.stage as 1 | 2 | undefined,
    device,
    log: (s) => console.error(s),
    onVideo: progressCallback('test', { unit: 'videos' }),
  });
  console.error(`stage ${r.stage}: best checkpoint of ${run} on the ${dataset.test.length} test videos of ${a.data} (${r.seconds.toFixed(1)} s)`);
  if (a.json) console.log(JSON.stringify({ run, stage: r.stage, videos: dataset.test.length, ...evaluationJson(r.evaluation), seconds: r.seconds }));
  else console.log(r.table);
  if (a['out-results']) {
    writeResults(a['out-results'] as string, r.results, `pstal test, model ${run}, stage ${r.stage}`);
    console.error(`detections: ${a['out-results']}`);
  }
  return 0;
}
