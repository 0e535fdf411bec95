/**
 * context.ts: what a training run of either stage is given (the videos, the run folder, the
 * evaluation's ground truth, resume and stop switches) and the per-step losses it reports.
 */
import type { GroundTruth } from '../../eval/detection';
import type { RunControl } from '../../train/control';
import type { ProposalsFile } from '../../formats/proposals';
import type { RunInputs } from '../../formats/run_config';
import type { Stage1Video } from './videos';

/**
 * What every training run is given: the split's videos, the run folder, the evaluation's setting.
 * V: the method's video record (HR-Pro's Stage1Video; TSPNet's VideoRecord).
 */
export interface RunContext<V = Stage1Video> extends RunControl {
  out: string;
  classNames: string[];
  train: V[];
  test: V[];
  ambiguous?: Map<string, [number, number][]>;
  /** test videos left out of evaluation (THUMOS14's three) */
  blockedVideos?: string[];
  /**
   * The test subset's ground truth as the evaluator reads it from gt_full.json (every video of the
   * subset, as the reference scores it, so a video without features counts as missed). Default:
   * built from the test videos' own annotations.
   */
  testGroundTruth?: GroundTruth;
  /**
   * What the run is computed from besides its configuration (the data folder's and the dataset
   * config's digests, the proposals a later stage learns from: lib/train/resume.ts), recorded in
   * its config and compared on resume; absent: not recorded, not compared.
   */
  inputs?: RunInputs;
}

export interface Stage1Context extends RunContext {
  /** called after every iteration (before any test of that iteration) */
  onIteration?: (iteration: number, losses: StepLosses) => void;
}

export interface StepLosses {
  total: number;
  video: number;
  frame: number;
  background: number;
  contrastive: number;
}

export interface Stage2Context extends RunContext {
  /** stage 1's RUN/proposals.json */
  proposals: ProposalsFile;
  /** called after every batch (its 1-based number in the whole run) */
  onBatch?: (batch: number, losses: Stage2Losses) => void;
}

export interface Stage2Losses {
  total: number;
  score: number;
  reg: number;
}
