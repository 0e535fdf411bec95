/**
 * `pstal train --stage 1|2 --data DIR --config thumos14 --out RUN ...`: one HR-Pro stage.
 * Stage 1 (SPEC §2): progress bar, the reference's mAP table at each test, then the best
 * checkpoint's test pass and the reliability ranking (SPEC §3) written to RUN/proposals.json.
 * Stage 2 (SPEC §4): continues from RUN/proposals.json. Ctrl-C stops after the current step with the
 * state saved; --resume goes on (with the settings and data the run recorded; more iterations or
 * epochs are accepted). A stage `pstal import` wrote is finished: --resume of an imported stage 1
 * ranks from it, of an imported stage 2 has nothing to do; without --resume a folder holding the
 * stage is refused unless --force. `pstal run` does both stages in one go.
 */
import * as path from 'path';
import { parseArgs, CliError, OptionSpec, Parsed } from './args';
import { COMMON_OPTIONS, STAGE1_OPTIONS, STAGE2_OPTIONS, setup, stage1Overrides, stage2Overrides, withSigint } from './training';
import { mainTspNet } from './tspnet';
import { trainStage1 } from '../models/hrpro/train_stage1';
import { STAGE1_TRAIN_DEFAULTS, STAGE2_TRAIN_DEFAULTS, stage1ConfigFrom, stage2ConfigFrom } from '../models/hrpro/config';
import { finishStage1 } from '../models/hrpro/pipeline';
import { trainStage2 } from '../models/hrpro/train_stage2';
import { PROPOSALS_FILE, readProposals } from '../formats/proposals';
import { rankImportedStage1, stageContext } from '../models/hrpro/run';
import { stage1Paths, stage2Paths } from '../models/hrpro/checkpoint';
import { readRunConfigIfPresent } from '../formats/run_config';
import { fileDigest } from '../train/resume';
import { formatMapTable } from '../eval/detection';
import { TSPNET_DEFAULTS } from '../models/tspnet/config';

/** Options of `pstal train --method tspnet` only (it also takes the common ones and the ones below). */
export const TSPNET_OPTIONS: Record<string, OptionSpec> = {
  base: { type: 'string', describe: 'tspnet: an HR-Pro run folder whose best checkpoints give the base proposals' },
  'base-stage': { type: 'number', describe: "tspnet: the base run's stage: 1 (raw stage-1 candidates) or 2 (stage-2 detections)", default: 1 },
  'proposals-train': { type: 'string', describe: 'tspnet: base proposals of the training subset (ActivityNet JSON, seconds) instead of --base' },
  'proposals-test': { type: 'string', describe: 'tspnet: base proposals of the test subset (ActivityNet JSON, seconds)' },
  'update-every': { type: 'number', describe: `tspnet: saliency point update every N iterations (${TSPNET_DEFAULTS.updateEvery}; 0: never)` },
  'reference-point-update': { type: 'boolean', describe: "tspnet: the reference's point update (offset added to the original point; parity runs)" },
  'keep-duplicates': { type: 'boolean', describe: 'tspnet: keep a segment listed once per class as several proposals (the reference; parity runs)' },
};

export const TRAIN_OPTIONS: Record<string, OptionSpec> = {
  method: { type: 'string', describe: "'hrpro' (one stage, --stage) or 'tspnet' (the plug-in on a base's proposals: --base or --proposals-train/-test)", default: 'hrpro' },
  stage: { type: 'number', describe: 'which HR-Pro stage to train: 1, or 2 (from RUN/proposals.json)', default: 1 },
  ...COMMON_OPTIONS,
  'batch-size': { type: 'number', describe: `videos per step (stage 1: ${STAGE1_TRAIN_DEFAULTS.batchSize}, stage 2: ${STAGE2_TRAIN_DEFAULTS.batchSize})` },
  lr: { type: 'number', describe: `Adam learning rate (stage 1: ${STAGE1_TRAIN_DEFAULTS.lr}, stage 2: ${STAGE2_TRAIN_DEFAULTS.lr})` },
  ...STAGE1_OPTIONS,
  ...STAGE2_OPTIONS,
  // the same options for tspnet, with its defaults in the help
  iterations: { type: 'number', describe: `training iterations (stage 1: ${STAGE1_TRAIN_DEFAULTS.iterations}, tspnet: ${TSPNET_DEFAULTS.iterations})` },
  'test-every': { type: 'number', describe: `test every N iterations (stage 1: ${STAGE1_TRAIN_DEFAULTS.testEvery}, tspnet: ${TSPNET_DEFAULTS.testEvery})` },
  'max-proposals': { type: 'number', describe: `proposals a training video, drawn at random beyond (stage 2: ${STAGE2_TRAIN_DEFAULTS.maxProposals}, tspnet: ${TSPNET_DEFAULTS.maxProposals})` },
  'no-ranking': { type: 'boolean', describe: 'stage 1: skip the final inference and reliability ranking' },
  ...TSPNET_OPTIONS,
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('train', argv, TRAIN_OPTIONS);
  if (!a) return 0;
  if (a.method === 'tspnet') return mainTspNet(a);
  if (a.method !== 'hrpro') throw new CliError(`--method must be 'hrpro' or 'tspnet', received '${a.method}'`);
  for (const k of Object.keys(TSPNET_OPTIONS)) if (a[k] !== undefined && a[k] !== TSPNET_OPTIONS[k].default) throw new CliError(`--${k} is a --method tspnet option`);
  if (a.stage !== 1 && a.stage !== 2) throw new CliError(`--stage must be 1 or 2, received ${a.stage}`);
  const { device, dataset } = setup(a, a.stage === 1 ? 'stage1' : 'stage2');
  const schedule = { lr: a.lr as number | undefined, batchSize: a['batch-size'] as number | undefined };
  const stage1 = stage1Overrides(a, schedule);
  const stage2 = stage2Overrides(a, schedule);
  const out = a.out as string;
  return withSigint(async (signal) => {
    const ctx = stageContext(dataset, { out, device, resume: Boolean(a.resume), quiet: Boolean(a.quiet), signal });
    const imported = readRunConfigIfPresent((a.stage === 1 ? stage1Paths(out) : stage2Paths(out)).config)?.imported as { from?: string } | undefined;
    if (a.resume && imported) {
      console.error(`stage ${a.stage}: imported into ${out} (from ${imported.from ?? 'elsewhere'}): a finished stage, not trained here`);
      if (a.stage === 2 || a['no-ranking']) return 0;
      const f = rankImportedStage1(ctx, stage1ConfigFrom(dataset.config, stage1));
      console.error(`stage 1: the imported checkpoint's test table\n${f.table}\nproposals for stage 2: ${f.proposalsFile} (${f.counts.PP} PP, ${f.counts.RP} RP, ${f.counts.NP} NP)`);
      return 0;
    }
    if (a.stage === 1) {
      const cfg = stage1ConfigFrom(dataset.config, stage1);
      console.error(
        `stage 1: ${dataset.train.length} training and ${dataset.test.length} test videos, D = ${dataset.train[0]?.D}, ` +
          `${dataset.classNames.length} classes; ${cfg.iterations} iterations of ${cfg.batchSize} videos, test every ${cfg.testEvery}`,
      );
      const r = await trainStage1(ctx, cfg);
      try {
        if (r.interrupted) return 130;
        console.error(`stage 1: best average mAP(${cfg.tiou[0]}:${cfg.tiou[cfg.tiou.length - 1]}) ${(100 * r.bestMap).toFixed(2)} at iteration ${r.bestIteration}`);
        if (!a['no-ranking']) {
          const f = finishStage1(ctx, cfg, r.model);
          console.error(`stage 1: best checkpoint's test table\n${f.table}\nproposals for stage 2: ${f.proposalsFile} (${f.counts.PP} PP, ${f.counts.RP} RP, ${f.counts.NP} NP)`);
          const was = readRunConfigIfPresent(stage2Paths(out).config)?.inputs?.proposals;
          if (typeof was === 'string' && was !== fileDigest(f.proposalsFile))
            console.error(`note: the stage 2 in ${out} was trained on the previous ranking (${was}); \`--stage 2 --resume\` refuses it, \`--stage 2 --force\` trains it again`);
        }
        return 0;
      } finally {
        r.model.dispose();
      }
    }
    const cfg = stage2ConfigFrom(dataset.config, stage2);
    const proposalsFile = path.join(out, PROPOSALS_FILE);
    const proposals = readProposals(proposalsFile);
    console.error(`stage 2: ${dataset.train.length} training and ${dataset.test.length} test videos; ${cfg.epochs} epochs of batches of ${cfg.batchSize} videos`);
    // stage 2 learns from the ranking: its digest is recorded and compared on resume
    const r = await trainStage2({ ...ctx, proposals, inputs: { ...ctx.inputs, proposals: fileDigest(proposalsFile) } }, cfg);
    try {
      if (r.interrupted) return 130;
      console.error(`stage 2: best average mAP(${cfg.tiou[0]}:${cfg.tiou[cfg.tiou.length - 1]}) ${(100 * r.bestMap).toFixed(2)} at epoch ${r.bestEpoch}` + (r.best ? `\n${formatMapTable(r.best)}` : ''));
      return 0;
    } finally {
      r.model.dispose();
    }
  });
}
