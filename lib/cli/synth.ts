/**
 * `pstal synth --out DIR [--annotations DIR] [--dim D] [--seed S] [--videos N] [--duration-scale X]
 * [--force]`: writes a synthetic dataset in the standard layout (SPEC §1, lib/data/synth.ts). With
 * --annotations the real annotation files are copied and only the features are invented. DIR must
 * be new or empty (--force: write over it), and never the --annotations folder.
 */
import * as path from 'path';
import { parseArgs, CliError, OptionSpec } from './args';
import { SYNTH_DEFAULTS, SynthKnobs, snippetCount, synthesizeDataset } from '../data/synth';
import { overLimit } from '../util/limits';
import { ProgressBar } from '../util/progress';
import { GT_FILE } from '../formats/ground_truth';
import { POINT_FILE } from '../formats/point_labels';
import { AMBIGUOUS_FILE, splitFile } from '../formats/splits';
import { refuseOutputOverInputs, requireEmptyFolder } from './outputs';

export const SYNTH_OPTIONS: Record<string, OptionSpec> = {
  out: { type: 'string', describe: 'folder to write the dataset into', required: true },
  annotations: { type: 'string', describe: 'a real annotation folder (gt_full.json, splits, point_labels/) to keep; only features are synthesized' },
  dim: { type: 'number', describe: 'feature width D', default: 2048 },
  seed: { type: 'number', describe: 'random seed (class directions, every video)', default: 0 },
  videos: { type: 'number', describe: 'invented data: total videos, half train half test (100); with --annotations: the first N of each split' },
  'duration-scale': { type: 'number', describe: `multiplies invented video durations (${SYNTH_DEFAULTS.durationScale}; 0.2 gives a small fast set)` },
  quiet: { type: 'boolean', describe: 'no progress output' },
  force: { type: 'boolean', describe: 'write into an --out folder that is not empty (files of the same names are replaced, the others stay)' },
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('synth', argv, SYNTH_OPTIONS);
  if (!a) return 0;
  const dim = a.dim as number;
  if (!Number.isInteger(dim) || dim < 1) throw new CliError(`--dim must be a positive integer, received ${dim}`);
  // the bounds of lib/util/limits.ts, before anything is written
  const wide = overLimit('featureDim', dim);
  if (wide) throw new CliError(`--dim must be ${wide}, received ${dim}`);
  if (!Number.isSafeInteger(a.seed as number)) throw new CliError(`--seed must be an integer, received ${a.seed}`);
  if (a.videos !== undefined && !(Number.isInteger(a.videos as number) && (a.videos as number) >= 1))
    throw new CliError(`--videos must be a positive integer, received ${a.videos}`);
  const many = a.videos !== undefined ? overLimit('synthVideos', a.videos as number) : null;
  if (many) throw new CliError(`--videos must be ${many}, received ${a.videos}`);
  const knobs: Partial<SynthKnobs> = {};
  if (a['duration-scale'] !== undefined) {
    const scale = a['duration-scale'] as number;
    if (!(scale > 0)) throw new CliError(`--duration-scale must be positive, received ${scale}`);
    // the longest invented video must stay within the snippets a video may have
    const longest = snippetCount(SYNTH_DEFAULTS.durationMax * scale);
    const long = overLimit('snippets', longest);
    if (long) throw new CliError(`--duration-scale ${scale} makes the longest video ${longest} snippets; it must have ${long}`);
    knobs.durationScale = scale;
  }
  if (a.annotations !== undefined) {
    const [out, ann] = [a.out as string, a.annotations as string];
    refuseOutputOverInputs('--out', out, [['the --annotations folder', ann]]);
    // file by file too: a link in --out may lead to an input
    const files = [GT_FILE, splitFile('train'), splitFile('test'), AMBIGUOUS_FILE, POINT_FILE];
    for (const f of files) refuseOutputOverInputs('--out', path.join(out, f), files.map((g) => ['the input', path.join(ann, g)]));
  }
  requireEmptyFolder('--out', a.out as string, Boolean(a.force));
  let bar: ProgressBar | undefined;
  const s = await synthesizeDataset({
    out: a.out as string,
    annotations: a.annotations as string | undefined,
    dim,
    seed: a.seed as number,
    videos: a.videos as number | undefined,
    knobs,
    onProgress: (done, total) => {
      if (a.quiet) return;
      bar ??= new ProgressBar('synth', total, { unit: 'videos' });
      bar.update(done);
    },
  });
  console.error(
    `synth: ${s.train} training and ${s.test} test videos, ${s.snippets} snippets of D = ${s.dim}, ` +
      `${s.classes.length} classes, in ${s.seconds.toFixed(1)} s (${(s.snippets / s.seconds).toFixed(0)} snippets/s) -> ${s.out}`,
  );
  return 0;
}
