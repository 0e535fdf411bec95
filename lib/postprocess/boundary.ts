/**
 * boundary.ts: TSPNet's alignment-based boundary adaptation, ABA (SPEC §5), by the native op
 * boundary_adaptation (native/cpu/boundary.cc).
 *
 * Class-wise, as the reference runs it once per predicted class: visit proposals by descending
 * score (equal scores: the later proposal first, as the reference's reversed argsort); an
 * unvisited leader gathers every proposal of its class, visited or not, with exact IoU > the
 * threshold (itself included) and moves to their average boundary weighted by
 * score x IoU / sum IoU, normalised; all gathered are marked visited. Returns one proposal per
 * input proposal in the input order: leaders with the adapted boundary, the rest unchanged, all
 * with their own scores (the reference soft-NMSes all of them afterwards). A leader whose
 * weights sum to 0 keeps its boundary.
 */
import { cpu } from '../runtime/native';
import { Proposal, fromRows, toRows } from './types';

export interface BoundaryAdaptationOptions {
  /** IoU above which a proposal joins a leader (0.4) */
  iouThreshold?: number;
}

export function boundaryAdaptation(proposals: readonly Proposal[], opts: BoundaryAdaptationOptions = {}): Proposal[] {
  const op = 'boundaryAdaptation';
  const thr = opts.iouThreshold ?? 0.4;
  if (typeof thr !== 'number' || !Number.isFinite(thr) || thr < 0 || thr >= 1) throw new Error(`${op}: iouThreshold must be in [0, 1), received ${thr}`);
  const rows = toRows(op, proposals);
  if (rows.length === 0) return [];
  return fromRows(cpu().boundary_adaptation(rows, thr) as Float64Array);
}
