/**
 * `pstal run --data DIR --config NAME --out RUN`: HR-Pro end to end (stage 1, ranking, stage 2,
 * final evaluation), printing the tables after each stage. `--resume` goes on from whatever RUN holds.
 */
import { parseArgs, OptionSpec } from './args';
import { COMMON_OPTIONS, STAGE1_OPTIONS, STAGE2_OPTIONS, setup, withSigint } from './train';
import { STAGE1_TRAIN_DEFAULTS } from '../models/hrpro/config';
import { STAGE2_TRAIN_DEFAULTS } from '../models/hrpro/config';
import { runHrPro } from '../models/hrpro/run';

export const RUN_OPTIONS: Record<string, OptionSpec> = {
  ...COMMON_OPTIONS,
  'batch-size': { type: 'number', describe: `stage 1: videos per iteration (${STAGE1_TRAIN_DEFAULTS.batchSize})` },
  lr: { type: 'number', describe: `stage 1: Adam learning rate (${STAGE1_TRAIN_DEFAULTS.lr})` },
  ...STAGE1_OPTIONS,
  'batch-size2': { type: 'number', describe: `stage 2: videos per batch (${STAGE2_TRAIN_DEFAULTS.batchSize})` },
  lr2: { type: 'number', describe: `stage 2: Adam learning rate (${STAGE2_TRAIN_DEFAULTS.lr})` },
  ...STAGE2_OPTIONS,
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('run', argv, RUN_OPTIONS);
  if (!a) return 0;
  const { device, dataset, stage1, stage2 } = setup(a, 'lr', 'lr2', 'batch-size', 'batch-size2');
  return withSigint(async (signal) => {
    const r = await runHrPro({ dataset, out: a.out as string, stage1, stage2, device, resume: Boolean(a.resume), quiet: Boolean(a.quiet), signal });
    return r.interrupted ? 130 : 0;
  });
}
