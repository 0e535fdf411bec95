/**
 * config.ts: TSPNet's training and inference configuration (SPEC §5, §5.1) with the reference's
 * defaults (zyxia1009/CVPR2024-TSPNet codes/config/config.py), and how it is built from a dataset
 * config (time base, tIoU thresholds) plus overrides.
 *
 * Two switches reproduce the reference where it differs from the paper (parity runs only):
 *   referencePointUpdate  the point update adds each new offset to the ORIGINAL point while measuring
 *                         it from the moved one, and points without a confident proposal go back to
 *                         the annotation (default: each point moves to the weighted center, or stays)
 *   keepDuplicates        a segment listed once per class stays several identical proposals
 *                         (default: deduplicated)
 */
import type { DatasetConfig } from '../../data';
import type { TspNetOptions } from './model';

export interface TspNetConfig {
  /** training iterations (2000), each one Adam step on `batchSize` videos */
  iterations: number;
  batchSize: number;
  /** test after every this many iterations (100, as the reference) */
  testEvery: number;
  /** also save the training state every this many iterations (0: only at tests) */
  checkpointEvery: number;
  /** proposals a training video, drawn at random when it has more (3000) */
  maxProposals: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** loss weights: point (1), saliency (20) */
  pointWeight: number;
  saliencyWeight: number;
  /** center target of a proposal without a point inside (0.4, the reference's soft_value) */
  softValue: number;
  /** saliency point update every this many iterations (200; 0: never) */
  updateEvery: number;
  /** proposals with sigmoid(center) above it move the points (0.8) */
  updateThreshold: number;
  referencePointUpdate: boolean;
  keepDuplicates: boolean;
  /** video-level class threshold at inference (0.1) */
  classThreshold: number;
  /** ABA: IoU above which proposals join a leader (0.4) */
  abaThreshold: number;
  softNmsSigma: number;
  /** soft-NMS with exact IoU instead of the reference's "+1" lengths (in snippets) */
  exactIoU: boolean;
  /** feature frames per second and frames per snippet: seconds x fps / frames = snippets */
  featureFps: number;
  snippetFrames: number;
  tiou: number[];
  /** proposals a forward pass at inference and point update (memory bound only: results do not depend on it) */
  chunk: number;
  model: Partial<Omit<TspNetOptions, 'featureDim' | 'numClasses' | 'device'>>;
}

export const TSPNET_DEFAULTS: TspNetConfig = {
  iterations: 2000,
  batchSize: 10,
  testEvery: 100,
  checkpointEvery: 0,
  maxProposals: 3000,
  lr: 5e-5,
  weightDecay: 1e-3,
  seed: 0,
  pointWeight: 1,
  saliencyWeight: 20,
  softValue: 0.4,
  updateEvery: 200,
  updateThreshold: 0.8,
  referencePointUpdate: false,
  keepDuplicates: false,
  classThreshold: 0.1,
  abaThreshold: 0.4,
  softNmsSigma: 0.3,
  exactIoU: false,
  featureFps: 25,
  snippetFrames: 16,
  tiou: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
  chunk: 3000,
  model: {},
};

/** The configuration from a dataset config (time base, tIoU, soft-NMS sigma), then explicit overrides. */
export function tspnetConfigFrom(config: DatasetConfig, overrides: Partial<TspNetConfig> = {}): TspNetConfig {
  const fromConfig: Partial<TspNetConfig> = {
    featureFps: config.featureFps,
    snippetFrames: config.snippetFrames,
    tiou: config.tiou,
    softNmsSigma: config.stage1?.softNmsSigma,
  };
  const defined = Object.fromEntries(Object.entries(fromConfig).filter(([, v]) => v !== undefined));
  const cfg: TspNetConfig = { ...TSPNET_DEFAULTS, ...defined, ...overrides, model: { ...(overrides.model ?? {}) } };
  checkConfig(cfg);
  return cfg;
}

export function checkConfig(c: TspNetConfig): void {
  const posInt = (k: keyof TspNetConfig): void => {
    const v = c[k] as number;
    if (!(Number.isInteger(v) && v >= 1)) throw new Error(`tspnet: ${k} must be a positive integer, received ${v}`);
  };
  for (const k of ['iterations', 'batchSize', 'testEvery', 'maxProposals', 'chunk'] as const) posInt(k);
  for (const k of ['checkpointEvery', 'updateEvery'] as const)
    if (!(Number.isInteger(c[k]) && c[k] >= 0)) throw new Error(`tspnet: ${k} must be a non-negative integer, received ${c[k]}`);
  if (!(c.lr > 0)) throw new Error(`tspnet: lr must be positive, received ${c.lr}`);
  if (!(c.weightDecay >= 0)) throw new Error(`tspnet: weightDecay must be >= 0, received ${c.weightDecay}`);
  if (!(c.abaThreshold >= 0 && c.abaThreshold < 1)) throw new Error(`tspnet: abaThreshold must be in [0, 1), received ${c.abaThreshold}`);
  if (!(c.featureFps > 0 && c.snippetFrames > 0)) throw new Error('tspnet: featureFps and snippetFrames must be positive');
}

/** Snippets per second of the configuration (25 / 16 for THUMOS14). */
export function snippetsPerSecond(c: Pick<TspNetConfig, 'featureFps' | 'snippetFrames'>): number {
  return c.featureFps / c.snippetFrames;
}
