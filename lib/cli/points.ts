/**
 * `pstal points --gt gt_full.json --out point_labels/point_gaussian.csv [--distribution
 * gaussian|uniform|center] [--sigma F | --sigma-fraction X] [--seed S] [--subset NAME]...`: point
 * labels simulated from full annotations (lib/data/points.ts: one frame per instance, from a
 * Gaussian around its center with sigma = 1 frame by default, measured on the benchmarks' released
 * labels; clipped to the instance; frames at the video's fps), in the csv the loader reads.
 */
import * as path from 'path';
import { parseArgs, CliError, OptionSpec } from './args';
import { DEFAULT_POINT_SIGMA_FRAMES, POINT_DISTRIBUTIONS, PointDistribution, pointsCsv, simulatePoints } from '../data/points';
import { writeFileAtomic } from '../util/fs';
import { refuseOutputOverInputs } from './outputs';

export const POINTS_OPTIONS: Record<string, OptionSpec> = {
  gt: { type: 'string', describe: 'full annotations: gt_full.json ({"database": {video: {subset, duration, fps, annotations}}})', required: true },
  out: { type: 'string', describe: 'csv to write (a dataset reads DIR/point_labels/point_gaussian.csv)', required: true },
  distribution: {
    type: 'string',
    describe:
      "where in each instance the point falls: 'gaussian' (around the center, clipped to the instance: how THUMOS14/GTEA/BEOID's released labels were made), 'uniform' (any frame of the instance), 'center'",
    default: 'gaussian',
  },
  sigma: {
    type: 'number',
    describe: `gaussian: standard deviation in frames at the video's fps (default ${DEFAULT_POINT_SIGMA_FRAMES}, measured on the released THUMOS14/GTEA/BEOID labels: sd 1.06 / 0.52 / 0.67 frames around the center, whatever the instance's length)`,
  },
  'sigma-fraction': { type: 'number', describe: "gaussian: standard deviation as this fraction of the instance's length instead (e.g. 0.1667: the instance spans +-3 sigma)" },
  seed: { type: 'number', describe: "random seed (each video's draws depend on the seed and its name only)", default: 0 },
  subset: { type: 'list', describe: "label only the videos of this subset of gt_full.json (repeat for several; THUMOS14's labels cover 'Validation', its training subset); default: every video" },
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('points', argv, POINTS_OPTIONS);
  if (!a) return 0;
  const distribution = a.distribution as PointDistribution;
  if (!POINT_DISTRIBUTIONS.includes(distribution)) throw new CliError(`--distribution must be one of ${POINT_DISTRIBUTIONS.join(', ')}, received '${a.distribution}'`);
  if (!Number.isInteger(a.seed as number)) throw new CliError(`--seed must be an integer, received ${a.seed}`);
  // options that would be ignored are usage errors: a sigma for another distribution, or both sigmas
  for (const k of ['sigma', 'sigma-fraction'])
    if (a[k] !== undefined && distribution !== 'gaussian') throw new CliError(`--${k} is for --distribution gaussian (received --distribution ${distribution}, which has no sigma)`);
  if (a.sigma !== undefined && a['sigma-fraction'] !== undefined)
    throw new CliError('--sigma and --sigma-fraction both set the Gaussian\'s standard deviation: give one (frames, or a fraction of the instance\'s length)');
  const sigma = (a.sigma as number | undefined) ?? DEFAULT_POINT_SIGMA_FRAMES;
  if (!(sigma >= 0)) throw new CliError(`--sigma must be a non-negative number of frames, received ${a.sigma}`);
  if (a['sigma-fraction'] !== undefined && !((a['sigma-fraction'] as number) >= 0)) throw new CliError(`--sigma-fraction must be non-negative, received ${a['sigma-fraction']}`);
  refuseOutputOverInputs('--out', a.out as string, [['the --gt file', a.gt as string]]);
  const r = simulatePoints(a.gt as string, {
    distribution,
    seed: a.seed as number,
    sigma: a.sigma as number | undefined,
    sigmaFraction: a['sigma-fraction'] as number | undefined,
    subsets: a.subset as string[] | undefined,
  });
  writeFileAtomic(a.out as string, pointsCsv(r.points));
  const how = distribution === 'gaussian' ? `gaussian, sigma ${a['sigma-fraction'] !== undefined ? `${a['sigma-fraction']} x instance length` : `${sigma} frame(s)`}` : distribution;
  const subsets = Object.entries(r.subsets).map(([s, n]) => `${n} ${s}`).join(', ');
  console.error(`points: ${r.points.length} point labels (${how}, seed ${a.seed}) for ${r.videos} videos (${subsets}), ${r.classes.length} classes -> ${path.resolve(a.out as string)}`);
  return 0;
}
