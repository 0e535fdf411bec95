/**
 * nms.ts: class-wise soft-NMS (SPEC §2, §4, §5) by the native op soft_nms (native/cpu/nms.cc).
 *
 * Exactly the reference's loop: the first highest-scoring proposal (np.argmax) is swapped with
 * the first remaining one, kept with its current score, and every remaining proposal's score is
 * decayed by exp(-IoU^2 / sigma). The swap reorders the remaining proposals, which decides
 * later ties; we reproduce it. Every proposal comes back (gaussian, linear) with its decayed
 * score. IoU uses the reference's "+1" lengths by default (exactIoU: true for plain IoU).
 *
 * Output order: classes in the order of their first appearance in the input (the reference's
 * per-class dict insertion order when the input is in generation order), each class's
 * proposals in selection order.
 */
import { cpu } from '../runtime/native';
import { Proposal, fromRows, toRows } from './types';

export interface SoftNmsOptions {
  /** gaussian width (0.3) */
  sigma?: number;
  /** plain IoU instead of the reference's "+1" convention (false) */
  exactIoU?: boolean;
  /** 'gaussian' (default), 'linear' (score x (1 - IoU) above iouThreshold) or 'hard' (score 0 above it) */
  method?: 'gaussian' | 'linear' | 'hard';
  /** for 'linear' and 'hard' (0.7) */
  iouThreshold?: number;
}

const METHODS = { gaussian: 0, linear: 1, hard: 2 } as const;

export function softNms(proposals: readonly Proposal[], opts: SoftNmsOptions = {}): Proposal[] {
  const op = 'softNms';
  const sigma = opts.sigma ?? 0.3;
  const iouThreshold = opts.iouThreshold ?? 0.7;
  const method = opts.method ?? 'gaussian';
  if (!Object.hasOwn(METHODS, method)) throw new Error(`${op}: method must be 'gaussian', 'linear' or 'hard', received ${method}`);
  if (typeof sigma !== 'number' || !Number.isFinite(sigma) || sigma <= 0) throw new Error(`${op}: sigma must be a positive number, received ${sigma}`);
  if (typeof iouThreshold !== 'number' || !Number.isFinite(iouThreshold) || iouThreshold < 0) {
    throw new Error(`${op}: iouThreshold must be a non-negative number, received ${iouThreshold}`);
  }
  const rows = toRows(op, proposals);
  if (rows.length === 0) return [];
  return fromRows(cpu().soft_nms(rows, METHODS[method], sigma, iouThreshold, !(opts.exactIoU ?? false)) as Float64Array);
}
