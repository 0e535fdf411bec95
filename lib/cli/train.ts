/**
 * `pstal train --stage 1 --data DIR --config thumos14 --out RUN ...`: HR-Pro stage-1 training
 * (SPEC §2) with a progress bar and the reference's mAP table at each test, then the final
 * stage-1 inference with the best checkpoint and the reliability ranking (SPEC §3) written to
 * RUN/proposals.json. Ctrl-C stops after the current step with the state saved; --resume goes on.
 */
import { parseArgs, CliError, OptionSpec } from './args';
import { loadConfig, loadDataset } from '../data';
import { STAGE1_TRAIN_DEFAULTS, trainStage1 } from '../models/hrpro/train_stage1';
import { finishStage1, stage1ConfigFrom } from '../models/hrpro/pipeline';
import { setNumThreads } from '../runtime/native';
import { loadGroundTruth } from '../eval/detection';
import { checkDevice } from '../runtime/backend';

export const TRAIN_OPTIONS: Record<string, OptionSpec> = {
  stage: { type: 'number', describe: 'which HR-Pro stage to train (1; stage 2 is `pstal run`)', default: 1 },
  data: { type: 'string', describe: 'dataset folder in the standard layout (gt_full.json, splits, point_labels/, features/)', required: true },
  config: { type: 'string', describe: 'dataset config: thumos14, gtea, beoid, activitynet13, or a YAML file', default: 'thumos14' },
  out: { type: 'string', describe: 'run folder (config, metrics, checkpoints, results)', required: true },
  dim: { type: 'number', describe: 'feature width D of the data (default: the config, 2048)' },
  iterations: { type: 'number', describe: `training iterations (${STAGE1_TRAIN_DEFAULTS.iterations})` },
  'test-every': { type: 'number', describe: `test every N iterations (${STAGE1_TRAIN_DEFAULTS.testEvery})` },
  'batch-size': { type: 'number', describe: `videos per iteration (${STAGE1_TRAIN_DEFAULTS.batchSize})` },
  lr: { type: 'number', describe: `Adam learning rate (${STAGE1_TRAIN_DEFAULTS.lr})` },
  seed: { type: 'number', describe: 'random seed (initialisation, video order, dropout)', default: 0 },
  device: { type: 'string', describe: "'cpu' or 'cuda'", default: 'cpu' },
  threads: { type: 'number', describe: 'CPU threads (default: all cores, or PSTAL_NUM_THREADS)' },
  selection: { type: 'string', describe: "model selection: 'test' (best test mAP, as the references) or 'holdout' (held-out training videos)", default: 'test' },
  'holdout-fraction': { type: 'number', describe: 'fraction of training videos held out with --selection holdout', default: 0.1 },
  'prototype-reshape': { type: 'boolean', describe: "build prototype tokens with the reference's reshape (parity runs)" },
  'exact-iou': { type: 'boolean', describe: 'soft-NMS with exact IoU instead of the reference\'s "+1" lengths' },
  'checkpoint-every': { type: 'number', describe: 'also save the training state every N iterations (default: at each test)', default: 0 },
  resume: { type: 'boolean', describe: 'continue from RUN/stage1_last.safetensors' },
  'no-ranking': { type: 'boolean', describe: 'skip the final inference and reliability ranking' },
  quiet: { type: 'boolean', describe: 'no progress bar' },
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('train', argv, TRAIN_OPTIONS);
  if (!a) return 0;
  if (a.stage !== 1) throw new CliError(`--stage ${a.stage}: only stage 1 is trained by \`pstal train\` so far`);
  if (a.selection !== 'test' && a.selection !== 'holdout') throw new CliError(`--selection must be 'test' or 'holdout', received '${a.selection}'`);
  if (a.threads !== undefined) setNumThreads(a.threads as number);
  const device = checkDevice(a.device);
  const config = loadConfig(a.config as string, a.dim !== undefined ? { featureDim: a.dim as number } : {});
  const dataset = loadDataset(a.data as string, config, { onWarning: (m) => console.error(`warning: ${m}`) });
  const cfg = stage1ConfigFrom(config, {
    ...(a.iterations !== undefined && { iterations: a.iterations as number }),
    ...(a['test-every'] !== undefined && { testEvery: a['test-every'] as number }),
    ...(a['batch-size'] !== undefined && { batchSize: a['batch-size'] as number }),
    ...(a.lr !== undefined && { lr: a.lr as number }),
    seed: a.seed as number,
    selection: a.selection as 'test' | 'holdout',
    holdoutFraction: a['holdout-fraction'] as number,
    exactIoU: Boolean(a['exact-iou']),
    checkpointEvery: a['checkpoint-every'] as number,
  });
  if (a['prototype-reshape']) cfg.model = { ...cfg.model, prototypeReshape: true };
  console.error(
    `stage 1: ${dataset.train.length} training and ${dataset.test.length} test videos, D = ${dataset.train[0]?.D}, ` +
      `${dataset.classNames.length} classes; ${cfg.iterations} iterations of ${cfg.batchSize} videos, test every ${cfg.testEvery}`,
  );
  const signal = { stop: false };
  const onSigint = (): void => {
    if (signal.stop) process.exit(130);
    signal.stop = true;
    console.error('\nstopping after this iteration (Ctrl-C again to quit at once)...');
  };
  process.on('SIGINT', onSigint);
  try {
    const ctx = {
      out: a.out as string,
      classNames: dataset.classNames,
      train: dataset.train,
      test: dataset.test,
      ambiguous: dataset.ambiguous.size ? dataset.ambiguous : undefined,
      blockedVideos: config.blockedVideos,
      testGroundTruth: loadGroundTruth(dataset.gtFile, dataset.testSubset, { blockedVideos: config.blockedVideos }),
      device,
      resume: Boolean(a.resume),
      quiet: Boolean(a.quiet),
      signal,
    };
    const r = await trainStage1(ctx, cfg);
    if (r.interrupted) return 130;
    console.error(`stage 1: best average mAP(${cfg.tiou[0]}:${cfg.tiou[cfg.tiou.length - 1]}) ${(100 * r.bestMap).toFixed(2)} at iteration ${r.bestIteration}`);
    if (!a['no-ranking']) {
      const f = finishStage1(ctx, cfg, r.model);
      console.error(`stage 1: best checkpoint's test table\n${f.table}\nproposals for stage 2: ${f.proposalsFile} (${f.counts.PP} PP, ${f.counts.RP} RP, ${f.counts.NP} NP)`);
    }
    r.model.dispose();
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
