/**
 * train_stage2.ts: HR-Pro stage-2 training and inference (SPEC §4), from stage 1's RUN/proposals.json.
 *
 * Training video: proposals = its PP (seconds -> snippets, rounded to 3 decimals as the reference)
 * then its NP, at most `maxProposals` of them drawn at random; targets = its reliable proposals (RP).
 *   iou_gt     = best IoU of each proposal with the RPs (no gradient)
 *   score loss = SmoothL1(completeness, iou_gt) over the proposals with iou_gt >= 0.3 and a random
 *                share of the others (each kept with probability min(1, #high / #low))
 *   reg loss   = SmoothL1(best IoU of the refined proposal with the RPs, 1) over iou_gt >= 0.3
 * An epoch walks the shuffled training videos in batches of `batchSize` (the last partial batch
 * dropped, as the reference's loader), loss = mean over the batch's videos of score + reg, one Adam
 * step a batch; a test after every `testEvery` epochs, the best checkpoint kept by average mAP.
 * Inference is in inference.ts (stage2Detect); the run folder, checkpoints, resume, metrics and
 * progress are the shared loop's (lib/train/loop.ts): this file holds the step and the evaluation.
 */
import * as ops from '../../ops';
import { Tensor, tidy } from '../../tensor/tensor';
import { backward } from '../../tensor/autograd';
import { Adam } from '../../nn/optim';
import { Rng } from '../../util/rng';
import type { EvalResult } from '../../eval/detection';
import { runTrainingLoop, meanMap, TrainingMethod } from '../../train/loop';
import { Stage2Model, refineProposals } from './stage2';
import { Stage2TrainConfig, STAGE2_TRAIN_DEFAULTS } from './config';
import { saveStage2Model, stage2Paths } from './checkpoint';
import { testStage2 } from './evaluate';
import { trainingProposals } from './proposals';
import type { Stage1Video } from './videos';
import type { Stage2Context, Stage2Losses } from './context';

export type { Stage2Context, Stage2Losses } from './context';

export interface Stage2MetricsLine {
  epoch: number;
  batches: number;
  elapsed: number;
  loss: number;
  losses: { score: number; reg: number };
  test?: { map: number[]; average: number; averages: Record<string, number | undefined> };
  best: number;
  bestEpoch: number;
}

export interface Stage2TrainResult {
  model: Stage2Model;
  epoch: number;
  bestEpoch: number;
  bestMap: number;
  best: EvalResult | null;
  interrupted: boolean;
}

/** The two stage-2 losses of one video (SPEC §4). `rng` draws the share of low-IoU proposals. */
export function stage2Losses(
  model: Stage2Model,
  v: Pick<Stage1Video, 'features' | 'T'>,
  proposals: Float32Array,
  targets: Float32Array,
  iouThreshold: number,
  rng: Rng,
): { total: Tensor | null; score: number; reg: number } {
  const M = proposals.length / 2;
  const out = model.forward(model.proposalFeatures(v.features, v.T, proposals));
  const { iou: iouGt } = ops.maxSegmentIoUValues(proposals, targets);
  const high: number[] = [];
  const low: number[] = [];
  for (let m = 0; m < M; m++) (iouGt[m] >= iouThreshold ? high : low).push(m);
  const share = low.length ? Math.min(1, high.length / low.length) : 1;
  const scored = [...high];
  for (const m of low) if (rng.uniform() > 1 - share) scored.push(m);
  scored.sort((a, b) => a - b);
  const dev = out.completeness.device;
  const zero = Tensor.scalar(0, dev);
  const score = scored.length
    ? ops.smoothL1(ops.gatherRows(out.completeness.reshape([M, 1]), scored), Tensor.from(scored.map((m) => iouGt[m]), [scored.length, 1], dev), { reduction: 'mean' })
    : zero;
  let reg = zero;
  if (high.length) {
    const refined = refineProposals(proposals, out);
    const refinedIoU = ops.maxSegmentIoU(refined.start, refined.end, targets).reshape([M, 1]);
    reg = ops.smoothL1(ops.gatherRows(refinedIoU, high), Tensor.from(new Float32Array(high.length).fill(1), [high.length, 1], dev), { reduction: 'mean' });
  }
  // a video without positives nor sampled negatives has nothing to learn from
  const total = scored.length || high.length ? ops.add(score, reg) : null;
  return { total, score: score.item(), reg: reg.item() };
}

/** What the loop saves of an epoch in progress: the batch order and the running loss sums. */
interface Stage2Epoch {
  order: number[];
  sum: { total: number; score: number; reg: number; n: number };
}

export async function trainStage2(ctx: Stage2Context, config: Partial<Stage2TrainConfig> = {}): Promise<Stage2TrainResult> {
  const cfg: Stage2TrainConfig = { ...STAGE2_TRAIN_DEFAULTS, ...config };
  if (!ctx.train.length) throw new Error('trainStage2: no training videos');
  if (!(cfg.batchSize >= 1 && cfg.epochs >= 1 && cfg.testEvery >= 1 && cfg.maxProposals >= 1))
    throw new Error('trainStage2: batchSize, epochs, testEvery and maxProposals must be positive');
  const D = ctx.train[0].D;
  const modelRng = new Rng(cfg.seed + 100);
  const dataRng = new Rng(cfg.seed + 101);
  const model = new Stage2Model({ ...cfg.model, featureDim: D, device: ctx.device ?? 'cpu' }, modelRng);
  const adam = new Adam(model.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const inputs = ctx.train.map((v) => trainingProposals(ctx.proposals.train[v.name], 1 / cfg.secondsPerSnippet));
  const missing = ctx.train.filter((v) => !ctx.proposals.train[v.name]).length;
  // the reference's loader drops the last partial batch
  const batchesPerEpoch = Math.max(1, Math.floor(ctx.train.length / cfg.batchSize));
  const epochOf = (step: number): number => Math.floor(step / batchesPerEpoch);

  const method: TrainingMethod<Stage2Epoch, Stage2Losses> = {
    label: 'stage 2',
    unit: 'batch',
    kind: 'stage2-train-state',
    files: stage2Paths(ctx.out),
    model,
    adam,
    rngs: [modelRng, dataRng],
    totalSteps: cfg.epochs * batchesPerEpoch,
    config: { stage2: cfg, featureDim: D, classNames: ctx.classNames, train: ctx.train.length, inputs: ctx.inputs },
    resumeRules: { length: 'stage2.epochs' },
    extra: { order: [], sum: { total: 0, score: 0, reg: 0, n: 0 } },
    start(say) {
      if (missing) say(`stage 2: ${missing} training video(s) have no stage-1 proposals; they contribute no loss`);
    },
    step(done) {
      const e = this.extra;
      const batch = done % batchesPerEpoch;
      if (batch === 0) {
        e.order = dataRng.shuffle(ctx.train.map((_, i) => i));
        e.sum = { total: 0, score: 0, reg: 0, n: 0 };
      }
      const idx = e.order.slice(batch * cfg.batchSize, (batch + 1) * cfg.batchSize);
      adam.zeroGrad();
      const parts: Stage2Losses = { total: 0, score: 0, reg: 0 };
      for (const i of idx) {
        const v = ctx.train[i];
        let { proposals } = inputs[i];
        if (!proposals.length) continue;
        const M = proposals.length / 2;
        if (M > cfg.maxProposals) {
          const keep = dataRng.shuffle(Array.from({ length: M }, (_, m) => m)).slice(0, cfg.maxProposals);
          const sub = new Float32Array(2 * keep.length);
          keep.forEach((m, j) => sub.set(proposals.subarray(2 * m, 2 * m + 2), 2 * j));
          proposals = sub;
        }
        tidy(() => {
          const l = stage2Losses(model, v, proposals, inputs[i].targets, cfg.iouThreshold, dataRng);
          if (!Number.isFinite(l.score + l.reg)) throw new Error(`the loss of video ${v.name} is not finite (terms: score = ${l.score}, reg = ${l.reg})`);
          if (l.total) backward(ops.mulScalar(l.total, 1 / idx.length));
          parts.score += l.score / idx.length;
          parts.reg += l.reg / idx.length;
        });
      }
      parts.total = parts.score + parts.reg;
      adam.step();
      e.sum.total += parts.total;
      e.sum.score += parts.score;
      e.sum.reg += parts.reg;
      e.sum.n++;
      return parts;
    },
    testAfter: (step) => step % batchesPerEpoch === 0 && epochOf(step) % cfg.testEvery === 0,
    checkpointAfter: (step) => step % batchesPerEpoch === 0,
    evaluate(_step, progress) {
      const pass = testStage2(model, ctx.test, ctx.proposals, ctx.classNames, cfg, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth, onVideo: progress });
      return { criterion: meanMap(pass.evaluation!), evaluation: pass.evaluation!, results: pass.results, seconds: pass.seconds };
    },
    metricsLine(l): Stage2MetricsLine {
      const { sum } = this.extra;
      const n = Math.max(1, sum.n);
      const e = l.evaluation.evaluation;
      return {
        epoch: epochOf(l.step),
        batches: l.step,
        elapsed: l.elapsed,
        loss: sum.total / n,
        losses: { score: sum.score / n, reg: sum.reg / n },
        test: { map: e.map, average: meanMap(e), averages: { ...e.averages } },
        best: l.best,
        bestEpoch: epochOf(l.bestStep),
      };
    },
    lineStep: (line) => line.batches as number,
    where: (step) => (step % batchesPerEpoch === 0 ? `epoch ${epochOf(step)}` : `epoch ${epochOf(step) + 1} batch ${step % batchesPerEpoch}`),
    saveBest: (file, step, criterion) => saveStage2Model(file, model, { epoch: String(epochOf(step)), criterion: String(criterion) }),
    resultsDetails: 'pstal stage 2',
  };
  const r = await runTrainingLoop(method, { out: ctx.out, resume: ctx.resume, quiet: ctx.quiet, log: ctx.log, signal: ctx.signal, onStep: ctx.onBatch });
  return { model, epoch: epochOf(r.step), bestEpoch: epochOf(r.bestStep), bestMap: r.best, best: r.bestEvaluation, interrupted: r.interrupted };
}
