/**
 * config.ts: HR-Pro's training and inference configurations (SPEC §2, §4): their types, the
 * reference's defaults, and how they are built from a dataset config (configs/*.yaml) plus overrides.
 */
import type { DatasetConfig } from '../../data';
import { defaultThresholds } from '../../postprocess';
import type { Stage1Options } from './stage1';
import type { Stage2Options } from './stage2';
import type { SeedOptions } from './pseudo_labels';
import { Stage1LossWeights, STAGE1_LOSS_WEIGHTS } from './losses';
import type { Stage1InferenceOptions } from './inference';

export interface Stage1TrainConfig extends Stage1InferenceOptions, SeedOptions {
  iterations: number;
  testEvery: number;
  /** training state is also saved every this many steps (0: only at tests) */
  checkpointEvery: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  memoryMomentum: number;
  lossWeights: Stage1LossWeights;
  /** tIoU thresholds of the test's mAP; the selection criterion is their mean */
  tiou: number[];
  selection: 'test' | 'holdout';
  /** fraction of the training videos held out when selection is 'holdout' */
  holdoutFraction: number;
  model: Partial<Omit<Stage1Options, 'featureDim' | 'numClasses'>>;
}

export const STAGE1_TRAIN_DEFAULTS: Stage1TrainConfig = {
  iterations: 1000,
  testEvery: 50,
  checkpointEvery: 0,
  batchSize: 16,
  lr: 1e-4,
  weightDecay: 5e-4,
  seed: 0,
  memoryMomentum: 0.001,
  lossWeights: STAGE1_LOSS_WEIGHTS,
  actThreshold: 0.1,
  bkgThreshold: 0.95,
  classThreshold: 0.5,
  casThresholds: defaultThresholds().cas,
  agnosticThresholds: defaultThresholds().agnostic,
  lambda: 0.25,
  gamma: 0,
  scale: 2,
  secondsPerSnippet: 16 / 25,
  softNmsSigma: 0.3,
  exactIoU: false,
  tiou: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
  selection: 'test',
  holdoutFraction: 0.1,
  model: {},
};

export interface Stage2TrainConfig {
  epochs: number;
  testEvery: number;
  batchSize: number;
  maxProposals: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** iou_gt at or above it makes a proposal positive (0.3) */
  iouThreshold: number;
  /** seconds per snippet (16 / 25) */
  secondsPerSnippet: number;
  softNmsSigma: number;
  exactIoU: boolean;
  tiou: number[];
  model: Partial<Omit<Stage2Options, 'featureDim' | 'device'>>;
}

export const STAGE2_TRAIN_DEFAULTS: Stage2TrainConfig = {
  epochs: 20,
  testEvery: 1,
  batchSize: 10,
  maxProposals: 1000,
  lr: 5e-5,
  weightDecay: 5e-4,
  seed: 0,
  iouThreshold: 0.3,
  secondsPerSnippet: 16 / 25,
  softNmsSigma: 0.3,
  exactIoU: false,
  tiou: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
  model: {},
};

/** The stage-1 training configuration from a dataset config, then explicit overrides. */
export function stage1ConfigFrom(config: DatasetConfig, overrides: Partial<Stage1TrainConfig> = {}): Stage1TrainConfig {
  const s = config.stage1;
  const fromConfig: Partial<Stage1TrainConfig> = {
    iterations: s.iterations,
    testEvery: s.testEvery,
    batchSize: s.batchSize,
    lr: s.lr,
    weightDecay: s.weightDecay,
    actThreshold: s.actThreshold,
    bkgThreshold: s.bkgThreshold,
    classThreshold: s.classThreshold,
    casThresholds: s.casThresholds,
    agnosticThresholds: s.agnosticThresholds,
    lambda: s.lambda,
    gamma: s.gamma,
    scale: s.scale,
    softNmsSigma: s.softNmsSigma,
    lossWeights: s.lambdas
      ? { video: s.lambdas[0], frame: s.lambdas[1], background: s.lambdas[2], contrastive: s.lambdas[3] }
      : STAGE1_TRAIN_DEFAULTS.lossWeights,
    secondsPerSnippet: config.snippetFrames / config.featureFps,
    tiou: config.tiou,
    model: { rAct: s.rAct, dropout: s.dropout },
  };
  const defined = Object.fromEntries(Object.entries(fromConfig).filter(([, v]) => v !== undefined));
  return { ...STAGE1_TRAIN_DEFAULTS, ...defined, ...overrides, model: { ...(defined.model as object), ...(overrides.model ?? {}) } };
}

/** The stage-2 training configuration from a dataset config, then explicit overrides. */
export function stage2ConfigFrom(config: DatasetConfig, overrides: Partial<Stage2TrainConfig> = {}): Stage2TrainConfig {
  const s = config.stage2;
  const fromConfig: Partial<Stage2TrainConfig> = {
    epochs: s.epochs,
    testEvery: s.testEvery,
    batchSize: s.batchSize,
    maxProposals: s.maxProposals,
    lr: s.lr,
    weightDecay: s.weightDecay,
    iouThreshold: s.iouThreshold,
    softNmsSigma: config.stage1.softNmsSigma,
    secondsPerSnippet: config.snippetFrames / config.featureFps,
    tiou: config.tiou,
    model: { roiBins: s.roiBins, extension: s.extension, dropout: s.dropout },
  };
  const defined = Object.fromEntries(Object.entries(fromConfig).filter(([, v]) => v !== undefined));
  return { ...STAGE2_TRAIN_DEFAULTS, ...defined, ...overrides, model: { ...(defined.model as object), ...(overrides.model ?? {}) } };
}
