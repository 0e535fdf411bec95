/**
 * run_folder.ts: what a run folder holds, stage by stage (trained here, or imported by `pstal
 * import`), and what was derived from what: the stage-1 ranking (proposals.json) and a stage 2
 * trained here come from stage 1; RUN/tspnet (the TSPNet run `pstal run --method hrpro+tspnet`
 * chains) from the HR-Pro stage its base proposals came from.
 *
 * The training commands use it so that nothing they did not make is overwritten without a word:
 * without --resume, a folder holding the stage they would train is refused, naming what is there;
 * with --force, that stage and what was derived from it are removed (listed), and training starts
 * afresh. `pstal import --force` removes what was derived from the replaced checkpoint the same way.
 */
import * as fs from 'fs';
import * as path from 'path';
import { PROPOSALS_FILE } from '../formats/proposals';
import { readRunConfigIfPresent, RunConfig } from '../formats/run_config';
import type { RunFiles } from '../train/loop';
import { stage1Paths, stage2Paths } from './hrpro/checkpoint';
import { tspnetPaths } from './tspnet/checkpoint';
import { TSPNET_SUBFOLDER } from './tspnet/pipeline';

/** A stage found in a run folder: what it is, in words, and its files. */
export interface HeldStage {
  what: string;
  files: string[];
}

/** Which training a command starts: `pstal run` (every stage), one HR-Pro stage, or a TSPNet run of its own folder. */
export type TrainingScope = 'run' | 'stage1' | 'stage2' | 'tspnet';

function configOf(file: string): RunConfig | null {
  try {
    return readRunConfigIfPresent(file);
  } catch {
    return null; // a damaged config: the stage's files are still named and removed
  }
}

/** One stage of a folder, when it has a checkpoint (best or last); `derived`: files made from it. */
function heldStage(label: string, files: RunFiles, derived: string[] = []): HeldStage | null {
  const checkpoints = [files.best, files.last].filter((f) => fs.existsSync(f));
  if (!checkpoints.length) return null;
  const c = configOf(files.config);
  const from = c?.imported ? String((c.imported as { from?: unknown }).from ?? 'elsewhere') : null;
  return {
    what: from ? `${label} imported from ${from}` : `${label} trained here (${checkpoints.map((f) => path.basename(f)).join(', ')})`,
    files: [...new Set([...(Object.values(files) as string[]), ...derived])].filter((f) => fs.existsSync(f)),
  };
}

export const heldStage1 = (out: string): HeldStage | null => heldStage('stage 1', stage1Paths(out), [path.join(out, PROPOSALS_FILE)]);
export const heldStage2 = (out: string): HeldStage | null => heldStage('stage 2', stage2Paths(out));
/** A TSPNet run in `dir` (its own folder, or RUN/tspnet of a chained run). */
export const heldTspNet = (dir: string): HeldStage | null => heldStage('TSPNet', tspnetPaths(dir), [path.join(dir, 'metrics.svg')]);

/** The chained TSPNet run of an HR-Pro folder, and the HR-Pro stage its base proposals came from. */
function chainedTspNet(out: string): { held: HeldStage; baseStage: number | null } | null {
  const dir = path.join(out, TSPNET_SUBFOLDER);
  const held = heldTspNet(dir);
  if (!held) return null;
  const base = configOf(tspnetPaths(dir).config)?.base as { stage?: unknown } | undefined;
  return { held: { ...held, what: `${held.what} in ${TSPNET_SUBFOLDER}/` }, baseStage: typeof base?.stage === 'number' ? base.stage : null };
}

/**
 * What was derived from an HR-Pro stage of `out`: from stage 1, a stage 2 trained here (an
 * imported one was not trained on our ranking) and the chained TSPNet run; from stage 2, the
 * chained TSPNet run when its base proposals are stage 2's (or unknown).
 */
export function derivedFrom(out: string, stage: 1 | 2): HeldStage[] {
  const out2: HeldStage[] = [];
  if (stage === 1) {
    const s2 = heldStage2(out);
    if (s2 && !configOf(stage2Paths(out).config)?.imported) out2.push(s2);
  }
  const t = chainedTspNet(out);
  if (t && (stage === 1 || t.baseStage !== 1)) out2.push(t.held);
  return out2;
}

/** The stages a fresh training of `scope` in `out` would overwrite, then those derived from them. */
function overwritten(out: string, scope: TrainingScope): { own: HeldStage[]; derived: HeldStage[] } {
  const some = (...x: (HeldStage | null)[]): HeldStage[] => x.filter((h): h is HeldStage => h !== null);
  switch (scope) {
    case 'run':
      return { own: some(heldStage1(out), heldStage2(out), chainedTspNet(out)?.held ?? null), derived: [] };
    case 'stage1':
      return { own: some(heldStage1(out)), derived: derivedFrom(out, 1) };
    case 'stage2':
      return { own: some(heldStage2(out)), derived: derivedFrom(out, 2) };
    case 'tspnet':
      return { own: some(heldTspNet(out)), derived: [] };
  }
}

/** Removes the files of the given stages; returns them. */
export function removeStages(stages: HeldStage[]): string[] {
  const removed: string[] = [];
  for (const s of stages)
    for (const f of s.files)
      if (fs.existsSync(f)) {
        fs.rmSync(f);
        removed.push(f);
      }
  return removed;
}

/**
 * Before a fresh (not resumed) training of `scope` in `out`: refuses when the folder holds what it
 * would overwrite, naming it, unless `force`; returns what `force` will remove (removeStages), so
 * that the caller removes it once its checks of the data passed.
 */
export function checkFreshStart(out: string, scope: TrainingScope, force: boolean): HeldStage[] {
  if (!fs.existsSync(out)) return [];
  const { own, derived } = overwritten(out, scope);
  if (!own.length) return [];
  if (!force) {
    const also = derived.length ? `; derived from it: ${derived.map((d) => d.what).join('; ')}` : '';
    throw new Error(
      `${out} holds ${own.map((h) => h.what).join('; ')}${also}. ` +
        `--resume goes on with it; --force starts afresh, removing it${derived.length ? ' and what was derived from it' : ''}; or give another --out`,
    );
  }
  return [...own, ...derived];
}
