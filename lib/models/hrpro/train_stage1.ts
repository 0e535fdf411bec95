/**
 * train_stage1.ts: HR-Pro stage-1 training as the reference runs it (SPEC §2 "Training"):
 *   memory initialisation (eval mode, zero prototypes, mean embedded feature at each class's points)
 *   then `iterations` steps, each forwarding `batchSize` training videos one at a time (whole videos,
 *   shuffled without replacement, reshuffled every floor(N / batchSize) steps as the reference's
 *   loader is re-created), backward of loss / batchSize per video (gradient accumulation, the same
 *   sum the reference backpropagates at once), the momentum memory update after each video, one
 *   Adam step; a test every `testEvery` steps, the best checkpoint kept by average mAP.
 * Model selection is on the test split as the references do it, or on a held-out part of the
 * training split (`selection: 'holdout'`) so the reported test number never chose the checkpoint.
 * The run folder, checkpoints, resume, metrics and progress are the shared loop's (lib/train/loop.ts);
 * this file holds the method: its step and its evaluation.
 */
import { Tensor, tidy, noGrad } from '../../tensor/tensor';
import * as ops from '../../ops';
import { backward } from '../../tensor/autograd';
import { Adam } from '../../nn/optim';
import { Rng } from '../../util/rng';
import type { EvalResult } from '../../eval/detection';
import { runTrainingLoop, meanMap, TrainingMethod } from '../../train/loop';
import { ComposedProjections, Stage1Model } from './stage1';
import { selectSeed } from './pseudo_labels';
import { stage1Losses, updateMemory } from './losses';
import { Stage1TrainConfig, STAGE1_TRAIN_DEFAULTS } from './config';
import { saveStage1Model, stage1Paths } from './checkpoint';
import { testStage1 } from './evaluate';
import { Stage1Video, pointMatrix } from './videos';
import type { Stage1Context, StepLosses } from './context';

export type { Stage1Context, StepLosses } from './context';

export interface Stage1TrainResult {
  model: Stage1Model;
  iteration: number;
  bestIteration: number;
  bestMap: number;
  interrupted: boolean;
  /** the last test of the best checkpoint */
  best: EvalResult | null;
}

export interface MetricsLine {
  iteration: number;
  elapsed: number;
  loss: number;
  losses: Record<string, number>;
  test?: { map: number[]; average: number; averages: Record<string, number | undefined> };
  holdout?: { map: number[]; average: number };
  best: number;
  bestIteration: number;
}

/** Prototype initialisation (SPEC §2): eval mode, zero memory, mean E over each class's points. */
export function initMemory(model: Stage1Model, videos: Stage1Video[]): { classesWithoutPoints: number[] } {
  const { numClasses: C, featureDim: D, device } = model.options;
  const wasTraining = model.training;
  model.eval();
  const sums = new Float64Array(C * D);
  const counts = new Float64Array(C);
  noGrad(() => {
    model.memory.tensor.buffer.fill(0);
    const projections = model.composeProjections();
    try {
      for (const v of videos) {
        tidy(() => {
          const E = model.forward(Tensor.from(v.features, [v.T, D], device), undefined, projections).embedded.toArray();
          // the reference takes the point-label matrix's snippets of the video's gt classes: two points of
          // one class in one snippet count once
          const points = pointMatrix(v, C);
          for (let t = 0; t < v.T; t++)
            for (let c = 0; c < C; c++) {
              if (!(points[t * C + c] > 0) || !(v.videoLabel[c] > 0)) continue;
              counts[c]++;
              for (let d = 0; d < D; d++) sums[c * D + d] += E[t * D + d];
            }
        });
      }
    } finally {
      projections.dispose();
    }
  });
  const m = new Float32Array(C * D);
  const missing: number[] = [];
  for (let c = 0; c < C; c++) {
    if (!counts[c]) {
      missing.push(c);
      continue;
    }
    for (let d = 0; d < D; d++) m[c * D + d] = sums[c * D + d] / counts[c];
  }
  model.memory.tensor.buffer.write(m);
  model.train(wasTraining);
  return { classesWithoutPoints: missing };
}

/** Which training videos are held out for model selection (deterministic in the seed). */
export function holdoutSplit(videos: Stage1Video[], fraction: number, seed: number): { fit: Stage1Video[]; holdout: Stage1Video[] } {
  const idx = new Rng(seed ^ 0x5eed5eed).shuffle(videos.map((_, i) => i));
  const n = Math.max(1, Math.min(videos.length - 1, Math.round(fraction * videos.length)));
  const hold = new Set(idx.slice(0, n));
  return { fit: videos.filter((_, i) => !hold.has(i)), holdout: videos.filter((_, i) => hold.has(i)) };
}

/**
 * One training iteration: each video forwarded whole, its seeds from the detached background
 * score, loss / batch backpropagated at once (the gradients accumulate), the memory updated after
 * each video (SPEC §2), then one Adam step. Returns the batch-mean losses.
 *
 * When the batch has more tokens (snippets and prototype tokens) than D, the RABs' q and k branches
 * are composed once for the batch (rab.ts): the composition and its backward cost 3 D^3 a branch,
 * and save 3 L D^2 a branch over L tokens (one GEMM forward, two backward).
 */
export function stage1Step(
  model: Stage1Model,
  adam: Adam,
  batch: Stage1Video[],
  pointMats: Map<string, Float32Array>,
  cfg: Pick<Stage1TrainConfig, 'actThreshold' | 'bkgThreshold' | 'lossWeights' | 'memoryMomentum'>,
): StepLosses {
  const { numClasses: C, featureDim: D } = model.options;
  model.train();
  adam.zeroGrad();
  const parts: StepLosses = { total: 0, video: 0, frame: 0, background: 0, contrastive: 0 };
  const tokens = batch.reduce((s, v) => s + v.T + C, 0);
  const projections = model.encoder.RAB.length && tokens > D ? model.composeProjections() : undefined;
  try {
    stage1Videos(model, batch, pointMats, cfg, parts, projections);
    projections?.flush();
  } finally {
    projections?.dispose();
  }
  adam.step();
  return parts;
}

/** The batch's videos, forward and backward one at a time: losses into `parts`, gradients accumulated. */
function stage1Videos(
  model: Stage1Model,
  batch: Stage1Video[],
  pointMats: Map<string, Float32Array>,
  cfg: Pick<Stage1TrainConfig, 'actThreshold' | 'bkgThreshold' | 'lossWeights' | 'memoryMomentum'>,
  parts: StepLosses,
  projections: ComposedProjections | undefined,
): void {
  const { numClasses: C, featureDim: D, device } = model.options;
  const n = batch.length;
  for (const v of batch) {
    const points = pointMats.get(v.name) ?? pointMatrix(v, C);
    tidy(() => {
      const out = model.forward(Tensor.from(v.features, [v.T, D], device), v.videoLabel, projections);
      const seeds = selectSeed(out.bkg.toArray(), points, C, cfg);
      const l = stage1Losses(out, points, v.videoLabel, seeds, model.memory.tensor, cfg.lossWeights);
      const total = l.total.item();
      if (!Number.isFinite(total)) {
        const terms = Object.entries({ video: l.video, frame: l.frame, background: l.background, contrastive: l.contrastive })
          .map(([k, x]) => `${k} = ${x}${Number.isFinite(x) ? '' : ' (non-finite)'}`)
          .join(', ');
        throw new Error(`the loss of video ${v.name} is ${total} (terms: ${terms})`);
      }
      backward(ops.mulScalar(l.total, 1 / n));
      updateMemory(model.memory.tensor, out.embedded, seeds, v.videoLabel, cfg.memoryMomentum);
      parts.total += total / n;
      parts.video += l.video / n;
      parts.frame += l.frame / n;
      parts.background += l.background / n;
      parts.contrastive += l.contrastive / n;
    });
  }
}

/** The data order the loop saves with the state: a shuffled pass over the videos and where it is. */
interface Stage1Order {
  order: number[];
  cursor: number;
}

export async function trainStage1(ctx: Stage1Context, config: Partial<Stage1TrainConfig> = {}): Promise<Stage1TrainResult> {
  const cfg: Stage1TrainConfig = { ...STAGE1_TRAIN_DEFAULTS, ...config };
  const C = ctx.classNames.length;
  if (!ctx.train.length) throw new Error('trainStage1: no training videos');
  const D = ctx.train[0].D;
  for (const v of [...ctx.train, ...ctx.test])
    if (v.D !== D) throw new Error(`trainStage1: video ${v.name} has feature width ${v.D}, expected ${D} like the others`);
  if (!(cfg.batchSize >= 1 && cfg.iterations >= 1 && cfg.testEvery >= 1)) throw new Error('trainStage1: batchSize, iterations and testEvery must be positive');

  const { fit, holdout } = cfg.selection === 'holdout' ? holdoutSplit(ctx.train, cfg.holdoutFraction, cfg.seed) : { fit: ctx.train, holdout: [] };
  const modelRng = new Rng(cfg.seed);
  const dataRng = new Rng(cfg.seed + 1);
  const model = new Stage1Model({ ...cfg.model, featureDim: D, numClasses: C, device: ctx.device ?? 'cpu' }, modelRng);
  const adam = new Adam(model.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const log = ctx.log;
  let heldOut: EvalResult | null = null;
  const pointMats = new Map(fit.map((v) => [v.name, pointMatrix(v, C)]));
  // the reference re-creates its shuffled loader every floor(N / batch) steps, so N mod batch go unseen
  const stepsPerEpoch = Math.max(1, Math.floor(fit.length / cfg.batchSize));

  const method: TrainingMethod<Stage1Order, StepLosses> = {
    label: 'stage 1',
    unit: 'it',
    kind: 'stage1-train-state',
    files: stage1Paths(ctx.out),
    model,
    adam,
    rngs: [modelRng, dataRng],
    totalSteps: cfg.iterations,
    config: { stage1: cfg, featureDim: D, classNames: ctx.classNames, train: fit.length, holdout: holdout.map((v) => v.name), inputs: ctx.inputs },
    resumeRules: { length: 'stage1.iterations', free: ['stage1.checkpointEvery'] },
    extra: { order: [], cursor: 0 },
    start(say) {
      const { classesWithoutPoints } = initMemory(model, fit);
      if (classesWithoutPoints.length)
        say(`stage 1: no training points for class(es) ${classesWithoutPoints.map((c) => ctx.classNames[c]).join(', ')}; their prototypes start at zero`);
    },
    step(done) {
      const o = this.extra;
      if (done % stepsPerEpoch === 0) o.cursor = o.order.length; // a fresh loader, as the reference
      const batch = Array.from({ length: cfg.batchSize }, () => {
        if (o.cursor >= o.order.length) {
          o.order = dataRng.shuffle(fit.map((_, i) => i));
          o.cursor = 0;
        }
        return fit[o.order[o.cursor++]];
      });
      return stage1Step(model, adam, batch, pointMats, cfg);
    },
    testAfter: (step) => step % cfg.testEvery === 0,
    checkpointAfter: (step) => cfg.checkpointEvery > 0 && step % cfg.checkpointEvery === 0,
    evaluate(_step, progress) {
      const pass = testStage1(model, ctx.test, ctx.classNames, cfg, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth, onVideo: progress });
      if (!holdout.length) return { criterion: meanMap(pass.evaluation!), evaluation: pass.evaluation!, results: pass.results, seconds: pass.seconds };
      const h = testStage1(model, holdout, ctx.classNames, cfg, {}).evaluation!;
      heldOut = h;
      return { criterion: meanMap(h), evaluation: pass.evaluation!, results: pass.results, seconds: pass.seconds, note: `held-out train mAP avg ${(100 * meanMap(h)).toFixed(2)}` };
    },
    metricsLine(l, parts): MetricsLine {
      const e = l.evaluation.evaluation;
      return {
        iteration: l.step,
        elapsed: l.elapsed,
        loss: parts.total,
        losses: { video: parts.video, frame: parts.frame, background: parts.background, contrastive: parts.contrastive },
        test: { map: e.map, average: meanMap(e), averages: { ...e.averages } },
        holdout: heldOut ? { map: heldOut.map, average: meanMap(heldOut) } : undefined,
        best: l.best,
        bestIteration: l.bestStep,
      };
    },
    lineStep: (line) => line.iteration as number,
    where: (step) => `iteration ${step}`,
    saveBest: (file, step, criterion) => saveStage1Model(file, model, { iteration: String(step), selection: cfg.selection, criterion: String(criterion) }),
    resultsDetails: 'pstal stage 1',
  };
  const r = await runTrainingLoop(method, { out: ctx.out, resume: ctx.resume, quiet: ctx.quiet, log, signal: ctx.signal, onStep: ctx.onIteration });
  return { model, iteration: r.step, bestIteration: r.bestStep, bestMap: r.best, interrupted: r.interrupted, best: r.bestEvaluation };
}
