/**
 * train.ts: TSPNet training on the shared loop (lib/train/loop.ts; SPEC §5, §5.1). This file holds
 * the method: its step, its point update and its evaluation; the loop owns the run folder.
 *
 * One iteration = one Adam step on the mean of `batchSize` videos' losses (point x 1 + saliency x
 * 20). Videos come in a fresh random order every floor(N / batchSize) iterations (the reference
 * re-creates its shuffled loader then). A video with more than `maxProposals` proposals uses a random
 * subset of them, each with its own labels (the reference samples the RoI features only, whose
 * labels then no longer fit: its loss fails on the shape mismatch). Every `updateEvery` iterations,
 * after the step and before any test, the saliency point update runs over all training videos in
 * eval mode (labels.ts) and every video's labels are rebuilt from the moved points. The moved points
 * are part of the saved state, so a resumed run continues exactly.
 */
import type { RunContext } from '../hrpro/context';
import { emptyRecord } from '../../formats/text';
import * as ops from '../../ops';
import { tidy } from '../../tensor/tensor';
import { backward } from '../../tensor/autograd';
import { Adam } from '../../nn/optim';
import { Rng } from '../../util/rng';
import type { EvalResult } from '../../eval/detection';
import type { VideoRecord } from '../../data';
import { runTrainingLoop, meanMap, TrainingMethod } from '../../train/loop';
import { TspNetModel } from './model';
import { TspNetConfig, TSPNET_DEFAULTS, checkConfig } from './config';
import { tspnetPaths, saveTspNetModel } from './checkpoint';
import { ProposalLabels, TspPoint, proposalLabels, updatedPoints } from './labels';
import { tspnetLosses } from './losses';
import { scoreProposals } from './inference';
import { testTspNet } from './evaluate';
import type { VideoProposals } from './proposals';

export interface TspNetLosses {
  total: number;
  point: number;
  saliency: number;
}

export interface TspNetContext extends RunContext<VideoRecord> {
  /** every training video's points in the point file's order (readTspPoints) */
  points: Map<string, TspPoint[]>;
  proposals: { train: Map<string, VideoProposals>; test: Map<string, VideoProposals> };
  /** what the config file records about the base proposals */
  base?: object;
  /** called after every iteration (1-based), before any test of that iteration */
  onIteration?: (iteration: number, losses: TspNetLosses) => void;
}

export interface TspNetMetricsLine {
  iteration: number;
  elapsed: number;
  loss: number;
  losses: { point: number; saliency: number };
  pointUpdates: number;
  test?: { map: number[]; average: number; averages: Record<string, number | undefined> };
  best: number;
  bestIteration: number;
}

/** The resumable state: the data order, the points' current positions, running loss sums. */
interface TspNetExtra {
  order: number[];
  /** video -> current time (snippets) of each point, in the video's point order */
  points: Record<string, number[]>;
  updates: number;
  sum: { total: number; point: number; saliency: number; n: number };
}

export interface TspNetTrainResult {
  model: TspNetModel;
  iteration: number;
  bestIteration: number;
  bestMap: number;
  best: EvalResult | null;
  interrupted: boolean;
}

/** Indices of `keep` of `M` proposals drawn at random, in ascending order. */
export function sample(M: number, keep: number, rng: Rng): number[] {
  return rng
    .shuffle(Array.from({ length: M }, (_, m) => m))
    .slice(0, keep)
    .sort((a, b) => a - b);
}

/** The proposals at `idx` with their own labels (labels follow their proposals when sampled). */
export function subset(p: VideoProposals, l: ProposalLabels, idx: number[], C: number): { props: Float32Array; labels: ProposalLabels } {
  const props = new Float32Array(2 * idx.length);
  const label = new Float32Array(idx.length * C);
  const center = new Float32Array(idx.length);
  const pointId = new Int32Array(idx.length);
  idx.forEach((m, j) => {
    props[2 * j] = p.snippets32[2 * m];
    props[2 * j + 1] = p.snippets32[2 * m + 1];
    label.set(l.label.subarray(m * C, (m + 1) * C), j * C);
    center[j] = l.center[m];
    pointId[j] = l.pointId[m];
  });
  return { props, labels: { label, center, pointId } };
}

/** One training item: a video, the proposals it trains on (snippets, float32) and their labels. */
export interface TrainItem {
  v: { name: string; features: Float32Array; T: number };
  props: Float32Array;
  labels: Pick<ProposalLabels, 'label' | 'center'>;
}

/**
 * One optimizer step (the reference's train_one_proposal_batch): the mean over the items of
 * pointWeight x point + saliencyWeight x saliency, backpropagated one video at a time, one Adam step.
 */
export function batchStep(model: TspNetModel, adam: Adam, items: TrainItem[], cfg: Pick<TspNetConfig, 'pointWeight' | 'saliencyWeight'>): TspNetLosses {
  adam.zeroGrad();
  const parts: TspNetLosses = { total: 0, point: 0, saliency: 0 };
  for (const { v, props, labels } of items) {
    tidy(() => {
      const r = tspnetLosses(model.run(v.features, v.T, props), labels, cfg);
      if (!Number.isFinite(r.point + r.saliency)) throw new Error(`tspnet: the loss of video ${v.name} is not finite`);
      backward(ops.mulScalar(r.total, 1 / items.length));
      parts.point += r.point / items.length;
      parts.saliency += r.saliency / items.length;
    });
  }
  parts.total = cfg.pointWeight * parts.point + cfg.saliencyWeight * parts.saliency;
  adam.step();
  return parts;
}

/** The saliency point update of one training video (eval mode, every proposal): the points' new times. */
export function videoPointUpdate(
  model: TspNetModel,
  v: { features: Float32Array; T: number },
  proposals: VideoProposals,
  points: TspPoint[],
  labels: Pick<ProposalLabels, 'pointId'>,
  cfg: Pick<TspNetConfig, 'chunk' | 'updateThreshold' | 'referencePointUpdate'>,
): number[] {
  const s = scoreProposals(model, v, proposals.snippets32, cfg.chunk);
  return updatedPoints(points, proposals.snippets, labels.pointId, s.z, cfg.updateThreshold, cfg.referencePointUpdate);
}

export async function trainTspNet(ctx: TspNetContext, config: Partial<TspNetConfig> = {}): Promise<TspNetTrainResult> {
  const cfg: TspNetConfig = { ...TSPNET_DEFAULTS, ...config, model: { ...(config.model ?? {}) } };
  checkConfig(cfg);
  if (!ctx.train.length) throw new Error('tspnet: no training videos');
  for (const v of [...ctx.train, ...ctx.test])
    if (!(ctx.train.includes(v) ? ctx.proposals.train : ctx.proposals.test).get(v.name)) throw new Error(`tspnet: no proposals for video ${v.name}`);
  const D = ctx.train[0].D;
  const C = ctx.classNames.length;
  const modelRng = new Rng(cfg.seed + 200);
  const dataRng = new Rng(cfg.seed + 201);
  const model = new TspNetModel({ ...cfg.model, featureDim: D, numClasses: C, device: ctx.device ?? 'cpu' }, modelRng);
  const adam = new Adam(model.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const B = Math.min(cfg.batchSize, ctx.train.length);
  const perEpoch = Math.max(1, Math.floor(ctx.train.length / B));
  const pointsOf = (name: string): TspPoint[] => ctx.points.get(name) ?? [];

  // labels are a function of the points' current positions: rebuilt when those change (or on resume)
  let labels: ProposalLabels[] = [];
  let labelsOf: TspNetExtra['points'] | null = null;
  const currentPoints = (e: TspNetExtra, name: string): TspPoint[] => pointsOf(name).map((p, j) => ({ ...p, current: (Object.hasOwn(e.points, name) ? e.points[name][j] : undefined) ?? p.current }));
  const ensureLabels = (e: TspNetExtra): void => {
    if (labelsOf === e.points) return;
    labels = ctx.train.map((v) => proposalLabels(ctx.proposals.train.get(v.name)!.snippets, currentPoints(e, v.name), C, cfg.softValue));
    labelsOf = e.points;
  };

  const pointUpdate = (e: TspNetExtra): void => {
    ensureLabels(e);
    const moved: TspNetExtra['points'] = emptyRecord();
    ctx.train.forEach((v, i) => {
      moved[v.name] = videoPointUpdate(model, v, ctx.proposals.train.get(v.name)!, currentPoints(e, v.name), labels[i], cfg);
    });
    e.points = moved;
    e.updates++;
  };

  const initialPoints: TspNetExtra['points'] = emptyRecord();
  for (const v of ctx.train) initialPoints[v.name] = pointsOf(v.name).map((p) => p.current);
  const testOpts = { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth };
  const method: TrainingMethod<TspNetExtra, TspNetLosses> = {
    label: 'tspnet',
    unit: 'it',
    kind: 'tspnet-train-state',
    files: tspnetPaths(ctx.out),
    model,
    adam,
    rngs: [modelRng, dataRng],
    totalSteps: cfg.iterations,
    config: { tspnet: cfg, featureDim: D, classNames: ctx.classNames, train: ctx.train.length, test: ctx.test.length, base: ctx.base ?? null, inputs: ctx.inputs },
    resumeRules: { length: 'tspnet.iterations', free: ['tspnet.checkpointEvery'] },
    extra: { order: [], points: initialPoints, updates: 0, sum: { total: 0, point: 0, saliency: 0, n: 0 } },
    step(done) {
      const e = this.extra;
      ensureLabels(e);
      const b = done % perEpoch;
      if (b === 0) e.order = dataRng.shuffle(ctx.train.map((_, i) => i));
      const idx = e.order.slice(b * B, (b + 1) * B);
      const items: TrainItem[] = idx.map((i) => {
        const v = ctx.train[i];
        const p = ctx.proposals.train.get(v.name)!;
        const M = p.snippets32.length / 2;
        if (M <= cfg.maxProposals) return { v, props: p.snippets32, labels: labels[i] };
        return { v, ...subset(p, labels[i], sample(M, cfg.maxProposals, dataRng), C) };
      });
      const parts = batchStep(model, adam, items, cfg);
      e.sum.total += parts.total;
      e.sum.point += parts.point;
      e.sum.saliency += parts.saliency;
      e.sum.n++;
      if (cfg.updateEvery > 0 && (done + 1) % cfg.updateEvery === 0) pointUpdate(e);
      ctx.onIteration?.(done + 1, parts);
      return parts;
    },
    testAfter: (step) => step % cfg.testEvery === 0,
    checkpointAfter: (step) => cfg.checkpointEvery > 0 && step % cfg.checkpointEvery === 0,
    evaluate(_step, progress) {
      const pass = testTspNet(model, ctx.test, ctx.proposals.test, ctx.classNames, cfg, { ...testOpts, onVideo: progress });
      return { criterion: meanMap(pass.evaluation!), evaluation: pass.evaluation!, results: pass.results, seconds: pass.seconds };
    },
    metricsLine(l): TspNetMetricsLine {
      const { sum, updates } = this.extra;
      const n = Math.max(1, sum.n);
      const ev = l.evaluation.evaluation;
      const line: TspNetMetricsLine = {
        iteration: l.step,
        elapsed: l.elapsed,
        loss: sum.total / n,
        losses: { point: sum.point / n, saliency: sum.saliency / n },
        pointUpdates: updates,
        test: { map: ev.map, average: meanMap(ev), averages: { ...ev.averages } },
        best: l.best,
        bestIteration: l.bestStep,
      };
      this.extra.sum = { total: 0, point: 0, saliency: 0, n: 0 };
      return line;
    },
    lineStep: (line) => line.iteration as number,
    where: (step) => `iteration ${step}`,
    saveBest: (file, step, criterion) => saveTspNetModel(file, model, { iteration: String(step), criterion: String(criterion), classNames: JSON.stringify(ctx.classNames) }),
    resultsDetails: 'pstal tspnet',
  };
  const r = await runTrainingLoop(method, { out: ctx.out, resume: ctx.resume, quiet: ctx.quiet, log: ctx.log, signal: ctx.signal });
  return { model, iteration: r.step, bestIteration: r.bestStep, bestMap: r.best, best: r.bestEvaluation, interrupted: r.interrupted };
}
