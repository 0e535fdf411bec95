/**
 * detect.ts: a trained HR-Pro run applied to new videos. `loadHrPro(RUN)` loads both stages' best
 * checkpoints and their configurations; `detect(model, features)` does what the pipeline's test
 * pass does for one video: stage-1 scores and candidates (SPEC §2), then stage 2's completeness and
 * refinement (SPEC §4), class-wise soft-NMS. A run without stage 2 detects with stage 1 alone.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Rng } from '../../util/rng';
import { checkDevice, Device } from '../../runtime/backend';
import type { Detection } from '../../eval/detection';
import { ComposedProjections, Stage1Model } from './stage1';
import { noGrad } from '../../tensor/tensor';
import { Stage1Scores, scoreVideo, stage1Candidates, stage1Detections, stage2Detect } from './inference';
import { STAGE1_TRAIN_DEFAULTS, Stage1TrainConfig, STAGE2_TRAIN_DEFAULTS, Stage2TrainConfig } from './config';
import { loadStage1Weights, loadStage2Weights, stage1Paths, stage2Paths } from './checkpoint';
import { Stage2Model } from './stage2';
import { testProposals } from './proposals';
import { packByClass } from '../../formats/proposals';
import { groupByClass } from './ranking';
import { assertFiniteFeatures } from '../../data/npy';
import { readRunConfig } from '../../formats/run_config';
import { disposedError } from '../../util/dispose';

export interface HrProModel {
  run: string;
  classNames: string[];
  featureDim: number;
  stage1: Stage1Model;
  stage2: Stage2Model | null;
  cfg1: Stage1TrainConfig;
  cfg2: Stage2TrainConfig;
  /**
   * Stage 1's q and k branches composed (rab.ts) from the loaded weights, at the first call, for
   * every detect() after it (a model loaded for detection is not trained further).
   */
  stage1Projections(): ComposedProjections;
  /** Frees both stages' weights; detect() on a disposed model throws, naming it. */
  dispose(): void;
  readonly disposed: boolean;
  [Symbol.dispose](): void;
}

/** Both stages' best checkpoints of a run folder (stage 2 when the run has one). */
export function loadHrPro(run: string, options: { device?: Device | string } = {}): HrProModel {
  const device = checkDevice(options.device ?? 'cpu');
  const p1 = stage1Paths(run);
  if (!fs.existsSync(p1.best)) throw new Error(`${run}: no stage-1 checkpoint (${path.basename(p1.best)}); train the run first`);
  const c1 = readRunConfig(p1.config);
  const featureDim = c1.featureDim as number;
  const classNames = c1.classNames as string[];
  if (!(featureDim > 0) || !Array.isArray(classNames)) throw new Error(`${p1.config}: missing featureDim or classNames`);
  const cfg1: Stage1TrainConfig = { ...STAGE1_TRAIN_DEFAULTS, ...(c1.stage1 as Partial<Stage1TrainConfig>) };
  const stage1 = new Stage1Model({ ...cfg1.model, featureDim, numClasses: classNames.length, device }, new Rng(0));
  loadStage1Weights(stage1, p1.best);
  stage1.eval();
  const p2 = stage2Paths(run);
  let stage2: Stage2Model | null = null;
  let cfg2 = STAGE2_TRAIN_DEFAULTS;
  if (fs.existsSync(p2.best)) {
    cfg2 = { ...STAGE2_TRAIN_DEFAULTS, ...((readRunConfig(p2.config).stage2 ?? {}) as Partial<Stage2TrainConfig>) };
    stage2 = new Stage2Model({ ...cfg2.model, featureDim, device }, new Rng(0));
    loadStage2Weights(stage2, p2.best);
    stage2.eval();
  }
  let projections: ComposedProjections | null = null;
  let disposed = false;
  return {
    run,
    classNames,
    featureDim,
    stage1,
    stage2,
    cfg1,
    cfg2,
    stage1Projections() {
      if (disposed) throw disposedError(`the HR-Pro model of ${run}`, 'detect');
      return (projections ??= noGrad(() => stage1.composeProjections()));
    },
    get disposed() {
      return disposed;
    },
    [Symbol.dispose]() {
      this.dispose();
    },
    dispose() {
      disposed = true;
      projections?.dispose();
      projections = null;
      stage1.dispose();
      stage2?.dispose();
    },
  };
}

export interface VideoDetections {
  /** label, score, segment [start, end] in seconds */
  detections: Detection[];
  /** stage 1's scores over time (for plots): cas [T, C], background [T], video scores [C] */
  scores: Stage1Scores;
}

export type FeatureInput = Float32Array | { data: Float32Array; shape: number[] };

/** Detections in one video's features ([T, D] rows, e.g. readNpy's result). Synchronous: the work is native and CPU-bound. */
export function detect(
  model: HrProModel,
  features: FeatureInput,
  options: { name?: string; ambiguous?: Map<string, [number, number][]>; clip?: boolean } = {},
): VideoDetections {
  if (model.disposed) throw disposedError(`the HR-Pro model of ${model.run}`, 'detect');
  const D = model.featureDim;
  const data = features instanceof Float32Array ? features : features.data;
  if (!(features instanceof Float32Array) && (features.shape.length !== 2 || features.shape[1] !== D))
    throw new Error(`detect: features must be [T, ${D}] for this model, received [${features.shape.join(', ')}]`);
  const name = options.name ?? 'video';
  if (!(data instanceof Float32Array)) throw new Error(`detect: ${name}: features must be a Float32Array`);
  if (data.length === 0) throw new Error(`detect: ${name}: no feature rows (T = 0); a video needs at least one snippet`);
  if (data.length % D !== 0) throw new Error(`detect: ${name}: ${data.length} feature values are not a whole number of rows of D = ${D}`);
  const T = data.length / D;
  assertFiniteFeatures(`detect: ${name}`, data, D);
  const scores = scoreVideo(model.stage1, data, T, model.stage1Projections());
  for (const [what, a] of [['class activation', scores.casP], ['background', scores.bkg], ['video', scores.vidScore]] as const)
    if (a && !a.every(Number.isFinite)) throw new Error(`detect: ${name}: the model's ${what} scores are not finite (features of extreme magnitude?)`);
  const candidates = stage1Candidates(scores, model.cfg1);
  let detections: Detection[];
  if (!model.stage2) detections = stage1Detections(name, candidates, model.classNames, model.cfg1, options.ambiguous);
  else {
    // the same path as the pipeline: PP grouped by class (proposals.json), then snippets
    const pp = testProposals(packByClass(groupByClass(candidates, model.classNames)), model.classNames, 1 / model.cfg2.secondsPerSnippet);
    detections = stage2Detect(model.stage2, { features: data, T, name }, pp, model.classNames, model.cfg2, options.ambiguous).detections;
  }
  // for users, segments inside the video (the evaluation passes keep the reference's unclipped ones)
  if (options.clip !== false) detections = clipDetections(detections, T * model.cfg1.secondsPerSnippet);
  return { detections, scores };
}

/**
 * Segments clipped to the video, [0, duration] seconds (stage 2's refinement and the proposals'
 * extension can reach past either end; the evaluation keeps them as the reference does). A segment
 * entirely outside is dropped. Order and scores are unchanged.
 */
export function clipDetections(detections: Detection[], duration: number): Detection[] {
  const out: Detection[] = [];
  for (const d of detections) {
    const s = Math.min(Math.max(d.segment[0], 0), duration);
    const e = Math.min(Math.max(d.segment[1], 0), duration);
    if (e > s) out.push({ ...d, segment: [s, e] });
  }
  return out;
}
