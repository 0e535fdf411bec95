/**
 * `pstal run --data DIR --config NAME --out RUN`: HR-Pro end to end (stage 1, ranking, stage 2,
 * final evaluation), printing the tables after each stage. `--resume` goes on from whatever RUN
 * holds, with the settings and data the run recorded (more iterations or epochs are accepted); an
 * imported stage 1 is finished and gives the ranking. Without --resume, a folder that holds a run
 * is refused unless --force. `--method hrpro+tspnet` then trains the TSPNet plug-in on the run's
 * stage-2 detections (or its stage-1 candidates: --base-stage 1) in RUN/tspnet (runHrProTspNet,
 * lib/models/tspnet/pipeline.ts).
 */
import { parseArgs, CliError, OptionSpec, Parsed } from './args';
import { COMMON_OPTIONS, STAGE1_OPTIONS, STAGE2_OPTIONS, setup, stage1Overrides, stage2Overrides, withSigint } from './training';
import { STAGE1_TRAIN_DEFAULTS } from '../models/hrpro/config';
import { STAGE2_TRAIN_DEFAULTS } from '../models/hrpro/config';
import { runHrPro } from '../models/hrpro/run';
import { runHrProTspNet, TSPNET_SUBFOLDER } from '../models/tspnet/pipeline';
import { TSPNET_DEFAULTS, TspNetConfig } from '../models/tspnet/config';

/** Options of `--method hrpro+tspnet` only: TSPNet's, named apart from stage 1's. */
export const RUN_TSPNET_OPTIONS: Record<string, OptionSpec> = {
  'base-stage': { type: 'number', describe: `hrpro+tspnet: the HR-Pro stage whose output is TSPNet's base proposals: 2 (stage-2 detections) or 1 (raw stage-1 candidates)`, default: 2 },
  'tspnet-iterations': { type: 'number', describe: `hrpro+tspnet: TSPNet training iterations (${TSPNET_DEFAULTS.iterations})` },
  'tspnet-test-every': { type: 'number', describe: `hrpro+tspnet: TSPNet test every N iterations (${TSPNET_DEFAULTS.testEvery})` },
  'tspnet-batch-size': { type: 'number', describe: `hrpro+tspnet: TSPNet videos per iteration (${TSPNET_DEFAULTS.batchSize})` },
  'tspnet-lr': { type: 'number', describe: `hrpro+tspnet: TSPNet Adam learning rate (${TSPNET_DEFAULTS.lr})` },
  'tspnet-max-proposals': { type: 'number', describe: `hrpro+tspnet: TSPNet proposals a training video, drawn at random beyond (${TSPNET_DEFAULTS.maxProposals})` },
  'update-every': { type: 'number', describe: `hrpro+tspnet: saliency point update every N iterations (${TSPNET_DEFAULTS.updateEvery}; 0: never)` },
  'reference-point-update': { type: 'boolean', describe: "hrpro+tspnet: the reference's point update (parity runs)" },
  'keep-duplicates': { type: 'boolean', describe: 'hrpro+tspnet: keep a segment listed once per class as several proposals (parity runs)' },
};

export const RUN_OPTIONS: Record<string, OptionSpec> = {
  method: { type: 'string', describe: `'hrpro' (stage 1, ranking, stage 2) or 'hrpro+tspnet' (then the TSPNet plug-in on the stage-2 results, in RUN/${TSPNET_SUBFOLDER})`, default: 'hrpro' },
  ...COMMON_OPTIONS,
  'batch-size': { type: 'number', describe: `stage 1: videos per iteration (${STAGE1_TRAIN_DEFAULTS.batchSize})` },
  lr: { type: 'number', describe: `stage 1: Adam learning rate (${STAGE1_TRAIN_DEFAULTS.lr})` },
  ...STAGE1_OPTIONS,
  'batch-size2': { type: 'number', describe: `stage 2: videos per batch (${STAGE2_TRAIN_DEFAULTS.batchSize})` },
  lr2: { type: 'number', describe: `stage 2: Adam learning rate (${STAGE2_TRAIN_DEFAULTS.lr})` },
  ...STAGE2_OPTIONS,
  ...RUN_TSPNET_OPTIONS,
};

const num = (a: Parsed, k: string): number | undefined => (a[k] !== undefined ? (a[k] as number) : undefined);

/** TSPNet's configuration overrides from the `--tspnet-*` options (checked in setup(), NUMERIC_RULES). */
function tspnetOverrides(a: Parsed): Partial<TspNetConfig> {
  return Object.fromEntries(
    Object.entries({
      iterations: num(a, 'tspnet-iterations'),
      testEvery: num(a, 'tspnet-test-every'),
      batchSize: num(a, 'tspnet-batch-size'),
      lr: num(a, 'tspnet-lr'),
      maxProposals: num(a, 'tspnet-max-proposals'),
      updateEvery: num(a, 'update-every'),
      referencePointUpdate: a['reference-point-update'] ? true : undefined,
      keepDuplicates: a['keep-duplicates'] ? true : undefined,
    }).filter(([, v]) => v !== undefined),
  ) as Partial<TspNetConfig>;
}

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('run', argv, RUN_OPTIONS);
  if (!a) return 0;
  if (a.method !== 'hrpro' && a.method !== 'hrpro+tspnet') throw new CliError(`--method must be 'hrpro' or 'hrpro+tspnet', received '${a.method}'`);
  const chained = a.method === 'hrpro+tspnet';
  if (!chained)
    for (const [k, s] of Object.entries(RUN_TSPNET_OPTIONS)) if (a[k] !== undefined && a[k] !== s.default) throw new CliError(`--${k} is a --method hrpro+tspnet option`);
  if (a['base-stage'] !== 1 && a['base-stage'] !== 2) throw new CliError(`--base-stage must be 1 or 2, received ${a['base-stage']}`);
  const { device, dataset } = setup(a, 'run');
  const stage1 = stage1Overrides(a, { lr: a.lr as number | undefined, batchSize: a['batch-size'] as number | undefined });
  const stage2 = stage2Overrides(a, { lr: a.lr2 as number | undefined, batchSize: a['batch-size2'] as number | undefined });
  const tspnet = chained ? tspnetOverrides(a) : {};
  return withSigint(async (signal) => {
    const common = { dataset, out: a.out as string, stage1, stage2, device, resume: Boolean(a.resume), quiet: Boolean(a.quiet), signal };
    const r = chained ? await runHrProTspNet({ ...common, tspnet, baseStage: a['base-stage'] as 1 | 2 }) : await runHrPro(common);
    return r.interrupted ? 130 : 0;
  });
}
