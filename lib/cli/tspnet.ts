/**
 * `pstal train --method tspnet --data DIR --base RUN [--base-stage 1|2] --out RUN2`, or with
 * `--proposals-train A.json --proposals-test B.json` instead of `--base`: the TSPNet plug-in
 * (SPEC §5) on an HR-Pro run's proposals or any base locator's (ActivityNet format, seconds).
 * RUN2 gets proposals_{train,test}.json, the loop's files (tspnet_*), and the final table.
 */
import { CliError, Parsed } from './args';
import { refuseOutputOverInputs, runFiles } from './outputs';
import { tspnetPaths } from '../models/tspnet/checkpoint';
import { setup, withSigint } from './training';
import { train } from '../models/tspnet/run';
import { TspNetConfig, TSPNET_DEFAULTS } from '../models/tspnet/config';


const num = (a: Parsed, k: string): number | undefined => (a[k] !== undefined ? (a[k] as number) : undefined);

/**
 * --out is none of the inputs, checked before the run folder is taken (setup writes dataset.json
 * there): not the --base run (its dataset.json and metrics.svg would be replaced), nor a folder
 * whose proposals files are --proposals-train/-test.
 */
function refuseInputsAsOutput(a: Parsed): void {
  const out = a.out as string;
  if (a.base !== undefined) {
    refuseOutputOverInputs('--out', out, [['the --base run folder', a.base as string]]);
    for (const f of runFiles(out)) refuseOutputOverInputs('--out', f, runFiles(a.base as string).map((g) => ['a file of the --base run', g]));
  }
  const own = tspnetPaths(out);
  for (const [opt, file] of [['--proposals-train', a['proposals-train']], ['--proposals-test', a['proposals-test']]] as const)
    if (file !== undefined)
      for (const f of [own.proposalsTrain, own.proposalsTest, ...runFiles(out)])
        refuseOutputOverInputs('--out', f, [[`the ${opt} file`, file as string]]);
}

export async function mainTspNet(a: Parsed): Promise<number> {
  if (a.base === undefined && (a['proposals-train'] === undefined || a['proposals-test'] === undefined))
    throw new CliError('--method tspnet needs --base RUN (an HR-Pro run folder) or both --proposals-train and --proposals-test');
  if (a.base !== undefined && (a['proposals-train'] !== undefined || a['proposals-test'] !== undefined))
    throw new CliError('give either --base or --proposals-train/--proposals-test, not both');
  if (a['base-stage'] !== 1 && a['base-stage'] !== 2) throw new CliError(`--base-stage must be 1 or 2, received ${a['base-stage']}`);
  refuseInputsAsOutput(a);
  const { device, dataset } = setup(a, 'tspnet');
  const overrides = Object.fromEntries(
    Object.entries({
      iterations: num(a, 'iterations'),
      testEvery: num(a, 'test-every'),
      checkpointEvery: num(a, 'checkpoint-every'),
      batchSize: num(a, 'batch-size'),
      lr: num(a, 'lr'),
      maxProposals: num(a, 'max-proposals'),
      updateEvery: num(a, 'update-every'),
      seed: a.seed as number,
      exactIoU: Boolean(a['exact-iou']),
      referencePointUpdate: Boolean(a['reference-point-update']),
      keepDuplicates: Boolean(a['keep-duplicates']),
    }).filter(([, v]) => v !== undefined),
  ) as Partial<TspNetConfig>;
  const out = a.out as string;
  console.error(
    `tspnet: ${dataset.train.length} training and ${dataset.test.length} test videos, D = ${dataset.train[0]?.D}, ${dataset.classNames.length} classes; ` +
      (a.base !== undefined ? `base proposals from HR-Pro stage ${a['base-stage']} of ${a.base}` : `base proposals from ${a['proposals-train']} and ${a['proposals-test']}`),
  );
  return withSigint(async (signal) => {
    const r = await train({
      dataset,
      out,
      base: a.base as string | undefined,
      baseStage: a['base-stage'] as 1 | 2,
      proposalsTrain: a['proposals-train'] as string | undefined,
      proposalsTest: a['proposals-test'] as string | undefined,
      config: overrides,
      device,
      resume: Boolean(a.resume),
      quiet: Boolean(a.quiet),
      signal,
    });
    return r.interrupted ? 130 : 0;
  });
}
