/**
 * outputs.ts: what the commands check of an output path before writing anything: it is none of
 * the command's own inputs (`pstal points --gt D/gt_full.json --out D/gt_full.json`, `pstal gt
 * --annotations D --out D`), compared after resolving links (lib/util/paths.ts), and a dataset
 * folder is written into only when it is empty or --force says so.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CliError } from './args';
import { samePath } from '../util/paths';
import { stage1Paths, stage2Paths } from '../models/hrpro/checkpoint';
import { tspnetPaths } from '../models/tspnet/checkpoint';
import { PROPOSALS_FILE } from '../formats/proposals';
import { DATASET_RECORD_FILE } from '../formats/run_config';

/**
 * A usage error when the output `out` (given by `option`) is one of `inputs` ([what it is, path]):
 * writing it would replace what the command reads. Folders compare as folders (a folder-to-folder
 * command given one folder twice).
 */
export function refuseOutputOverInputs(option: string, out: string, inputs: [string, string][]): void {
  for (const [what, input] of inputs)
    if (samePath(out, input))
      throw new CliError(`${option} ${out} is ${what} ${input}: the output would replace the command's own input; choose another ${option}`);
}

/**
 * A usage error when `dir` exists and is not an empty folder, unless `force`: a dataset written
 * over another would mix their files (features of videos no longer listed, an old Ambiguous_test.txt).
 */
export function requireEmptyFolder(option: string, dir: string, force: boolean): void {
  let entries: string[];
  try {
    if (!fs.statSync(dir).isDirectory()) throw new CliError(`${option} ${dir} is not a folder`);
    entries = fs.readdirSync(dir);
  } catch (e) {
    if (e instanceof CliError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (entries.length === 0 || force) return;
  const shown = entries.sort().slice(0, 5).join(', ') + (entries.length > 5 ? `, ... (${entries.length} entries)` : '');
  throw new CliError(`${option} ${dir} is not empty (${shown}); write into a new folder, or pass --force to write over the files of the same names`);
}

/** The files a run folder's commands read and write (both HR-Pro stages, TSPNet, the ranking, the records). */
export function runFiles(run: string): string[] {
  return [
    ...Object.values(stage1Paths(run)),
    ...Object.values(stage2Paths(run)),
    ...Object.values(tspnetPaths(run)),
    path.join(run, PROPOSALS_FILE),
    path.join(run, DATASET_RECORD_FILE),
    path.join(run, 'metrics.svg'),
  ];
}
