/**
 * control.ts: how a training run is driven, whichever the method or stage: where it computes,
 * whether it resumes, what it prints and how it is told to stop. One type, taken by the training
 * loop, both HR-Pro stages, TSPNet, and the runs that chain them.
 */
import type { Device } from '../runtime/backend';

export interface RunControl {
  device?: Device;
  /** go on from the run folder's last saved state */
  resume?: boolean;
  /** no progress bar */
  quiet?: boolean;
  /** where tables and messages go (default: stderr through the progress bar) */
  log?: (text: string) => void;
  /** set `stop` to end after the current step, saving the training state */
  signal?: { stop: boolean };
}
