/**
 * `pstal check --data DIR [--config NAME] [--dim D]`: validates a dataset folder before training
 * (lib/data/check.ts: what is an error, what is a warning, the length tolerance). Prints a summary
 * (videos, snippets and instances per split, instances and points per class, points per
 * instance) and every problem by file, line, video and field; exits 1 when there is an error
 * (or, with --strict, a warning). `pstal run` and `pstal train` run the same checks first.
 */
import { parseArgs, CliError, OptionSpec } from './args';
import { overLimit } from '../util/limits';
import { loadConfig } from '../data/config';
import { checkDataset, formatCheckSummary, formatProblems, LENGTH_TOLERANCE, LENGTH_SLACK } from '../data/check';

export const CHECK_OPTIONS: Record<string, OptionSpec> = {
  data: { type: 'string', describe: 'dataset folder in the standard layout (gt_full.json, split_*.txt, point_labels/, features/)', required: true },
  config: { type: 'string', describe: 'dataset config (feature fps, snippet frames, class names): thumos14, gtea, beoid, activitynet13, or a YAML file', default: 'thumos14' },
  dim: { type: 'number', describe: "feature width every file must have (default: the first training video's)" },
  tolerance: {
    type: 'number',
    describe: `feature length T against duration * featureFps / snippetFrames: a warning past max(${LENGTH_SLACK} snippets, this fraction), an error past a factor 2`,
    default: LENGTH_TOLERANCE,
  },
  strict: { type: 'boolean', describe: 'exit 1 on warnings too' },
  all: { type: 'boolean', describe: 'list every problem (default: at most 20 of each kind)' },
  json: { type: 'boolean', describe: 'print the summary and problems as one JSON object' },
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('check', argv, CHECK_OPTIONS);
  if (!a) return 0;
  if (a.dim !== undefined && !(Number.isInteger(a.dim as number) && (a.dim as number) >= 1)) throw new CliError(`--dim must be a positive integer, received ${a.dim}`);
  const wide = a.dim !== undefined ? overLimit('featureDim', a.dim as number) : null;
  if (wide) throw new CliError(`--dim must be ${wide}, received ${a.dim}`);
  if (!((a.tolerance as number) >= 0)) throw new CliError(`--tolerance must be a non-negative fraction, received ${a.tolerance}`);
  const config = loadConfig(a.config as string);
  const r = checkDataset(a.data as string, config, { dim: a.dim as number | undefined, lengthTolerance: a.tolerance as number });
  const failed = r.errors > 0 || (Boolean(a.strict) && r.warnings > 0);
  if (a.json) {
    console.log(JSON.stringify({ ok: !failed, errors: r.errors, warnings: r.warnings, summary: r.summary, problems: r.problems }));
    return failed ? 1 : 0;
  }
  console.log(formatCheckSummary(r));
  const lines = formatProblems(r.problems, a.all ? 0 : 20);
  if (lines.length) console.error(lines.join('\n'));
  if (failed) console.error(`pstal check: ${a.data} is not ready for training (${r.errors} error(s), ${r.warnings} warning(s))`);
  else console.log(`pstal check: ${a.data} is ready for training`);
  return failed ? 1 : 0;
}
