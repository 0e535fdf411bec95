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
 * A run directory holds config.json, stage1_metrics.jsonl, stage1_best/last.safetensors,
 * stage1_results.json; `resume` continues from stage1_last exactly (model, Adam, RNG streams).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ops from '../../ops';
import { Tensor, tidy, noGrad } from '../../tensor/tensor';
import { backward } from '../../tensor/autograd';
import { Adam } from '../../nn/optim';
import { Rng } from '../../util/rng';
import { writeFileAtomic } from '../../util/fs';
import { ProgressBar } from '../../util/progress';
import { writeMetricsPlot } from '../../plot/metrics';
import { saveSafetensors, loadSafetensors } from '../../io/safetensors';
import { loadTrainState, saveTrainState } from '../train_state';
import { evaluateDetection, formatMapTable } from '../../eval/detection';
import type { DetectionResults, EvalResult, GroundTruth, Segment } from '../../eval/detection';
import { defaultThresholds } from '../../postprocess';
import type { Proposal } from '../../postprocess';
import { Device } from '../../runtime/backend';
import { Stage1Model, Stage1Options } from './stage1';
import { selectSeed, SeedOptions } from './pseudo_labels';
import { stage1Losses, updateMemory, Stage1LossWeights, STAGE1_LOSS_WEIGHTS } from './losses';
import { Stage1InferenceOptions, Stage1Scores, scoreVideo, stage1Candidates, stage1Detections } from './inference';

/** What stage 1 needs of a video (lib/data's VideoRecord has all of it). */
export interface Stage1Video {
  name: string;
  T: number;
  D: number;
  /** [T, D] */
  features: Float32Array;
  /** [C] multi-hot */
  videoLabel: Float32Array;
  points: { snippet: number; classIndex: number; time: number }[];
  gt: Segment[];
}

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

export interface Stage1Context {
  out: string;
  classNames: string[];
  train: Stage1Video[];
  test: Stage1Video[];
  ambiguous?: Map<string, [number, number][]>;
  /** test videos left out of evaluation (THUMOS14's three) */
  blockedVideos?: string[];
  /**
   * The test subset's ground truth as the evaluator reads it from gt_full.json (every video of the
   * subset, as the reference scores it, so a video without features counts as missed). Default:
   * built from the test videos' own annotations.
   */
  testGroundTruth?: GroundTruth;
  device?: Device;
  resume?: boolean;
  quiet?: boolean;
  /** where tables and messages go (default: stderr through the progress bar) */
  log?: (text: string) => void;
  /** set `stop` to end after the current step, saving the training state */
  signal?: { stop: boolean };
  /** called after every step (before any test of that step) */
  onIteration?: (iteration: number, losses: StepLosses) => void;
}

export interface TestPass {
  results: DetectionResults;
  candidates: Map<string, Proposal[]>;
  scores: Map<string, Stage1Scores>;
  evaluation: EvalResult | null;
  seconds: number;
}

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

/** [T, C] multi-hot point labels of a video. */
export function pointMatrix(v: Stage1Video, C: number): Float32Array {
  const m = new Float32Array(v.T * C);
  for (const p of v.points) m[Math.min(p.snippet, v.T - 1) * C + p.classIndex] = 1;
  return m;
}

export function groundTruthOf(videos: Stage1Video[], classNames: string[], blocked: string[] = []): GroundTruth {
  const skip = new Set(blocked);
  const gtVideos: Record<string, Segment[]> = {};
  const present = new Set<string>();
  for (const v of videos) {
    if (skip.has(v.name)) continue;
    gtVideos[v.name] = v.gt.map((g) => ({ label: g.label, segment: [g.segment[0], g.segment[1]] }));
    for (const g of v.gt) present.add(g.label);
  }
  return { classes: classNames.filter((c) => present.has(c)), videos: gtVideos };
}

export function meanMap(r: EvalResult): number {
  return r.map.reduce((a: number, b: number) => a + b, 0) / Math.max(1, r.map.length);
}

/** Runs the model over videos: scores, raw candidates, final detections, and mAP when gt is given. */
export function testStage1(
  model: Stage1Model,
  videos: Stage1Video[],
  classNames: string[],
  cfg: Stage1InferenceOptions & { tiou: number[] },
  opts: { ambiguous?: Map<string, [number, number][]>; blockedVideos?: string[]; evaluate?: boolean; groundTruth?: GroundTruth } = {},
): TestPass {
  const t0 = Date.now();
  const results: DetectionResults = {};
  const candidates = new Map<string, Proposal[]>();
  const scores = new Map<string, Stage1Scores>();
  for (const v of videos) {
    const s = scoreVideo(model, v.features, v.T);
    const cands = stage1Candidates(s, cfg);
    scores.set(v.name, s);
    candidates.set(v.name, cands);
    results[v.name] = stage1Detections(v.name, cands, classNames, cfg, opts.ambiguous);
  }
  const evaluation = opts.evaluate !== false ? scoreResults(results, videos, classNames, cfg.tiou, opts) : null;
  return { results, candidates, scores, evaluation, seconds: (Date.now() - t0) / 1000 };
}

/** mAP of a test pass's detections against the videos' ground truth (or the given one). */
export function scoreResults(
  results: DetectionResults,
  videos: Stage1Video[],
  classNames: string[],
  tiou: number[],
  opts: { blockedVideos?: string[]; groundTruth?: GroundTruth } = {},
): EvalResult {
  const gt = opts.groundTruth ?? groundTruthOf(videos, classNames, opts.blockedVideos);
  const kept: DetectionResults = {};
  for (const name of Object.keys(gt.videos)) if (results[name]) kept[name] = results[name];
  // our labels are the dataset's class names; classes absent from this subset's gt score no AP
  return evaluateDetection(gt, kept, { tiou, checkUnknown: false });
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
    for (const v of videos) {
      tidy(() => {
        const E = model.forward(Tensor.from(v.features, [v.T, D], device)).embedded.toArray();
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

interface TrainState {
  iteration: number;
  adamStep: number;
  modelRng: number[];
  dataRng: number[];
  order: number[];
  cursor: number;
  best: number;
  bestIteration: number;
  elapsed: number;
}

const FILES = {
  config: 'config.json',
  metrics: 'stage1_metrics.jsonl',
  best: 'stage1_best.safetensors',
  last: 'stage1_last.safetensors',
  results: 'stage1_results.json',
};

export function stage1Paths(out: string): Record<keyof typeof FILES, string> {
  return Object.fromEntries(Object.entries(FILES).map(([k, f]) => [k, path.join(out, f)])) as Record<keyof typeof FILES, string>;
}

export function saveStage1Model(file: string, model: Stage1Model, meta: Record<string, string> = {}): void {
  saveSafetensors(file, model.stateDict(), {
    pstal: 'stage1-model',
    featureDim: String(model.options.featureDim),
    numClasses: String(model.options.numClasses),
    prototypeReshape: String(model.options.prototypeReshape),
    ...meta,
  });
}

/** A model's weights from a safetensors file (ours, or a PyTorch state dict exported by name). */
export function loadStage1Weights(model: Stage1Model, file: string): Record<string, string> {
  const f = loadSafetensors(file);
  const own = new Set(model.stateDict().keys());
  const state = new Map([...f.tensors].filter(([k]) => own.has(k) || !k.startsWith('optimizer.')));
  try {
    model.loadStateDict(state);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return f.metadata;
}

function readMetrics(file: string, upTo: number): string[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() && (JSON.parse(l) as MetricsLine).iteration <= upTo);
}

export interface StepLosses {
  total: number;
  video: number;
  frame: number;
  background: number;
  contrastive: number;
}

/**
 * One training iteration: each video forwarded whole, its seeds from the detached background
 * score, loss / batch backpropagated at once (the gradients accumulate), the memory updated after
 * each video (SPEC §2), then one Adam step. Returns the batch-mean losses.
 */
export function stage1Step(
  model: Stage1Model,
  adam: Adam,
  batch: Stage1Video[],
  pointMats: Map<string, Float32Array>,
  cfg: Pick<Stage1TrainConfig, 'actThreshold' | 'bkgThreshold' | 'lossWeights' | 'memoryMomentum'>,
): StepLosses {
  const { numClasses: C, featureDim: D, device } = model.options;
  model.train();
  adam.zeroGrad();
  const parts: StepLosses = { total: 0, video: 0, frame: 0, background: 0, contrastive: 0 };
  const n = batch.length;
  for (const v of batch) {
    const points = pointMats.get(v.name) ?? pointMatrix(v, C);
    tidy(() => {
      const out = model.forward(Tensor.from(v.features, [v.T, D], device), v.videoLabel);
      const seeds = selectSeed(out.bkg.toArray(), points, C, cfg);
      const l = stage1Losses(out, points, v.videoLabel, seeds, model.memory.tensor, cfg.lossWeights);
      const total = l.total.item();
      if (!Number.isFinite(total)) throw new Error(`stage 1: the loss of video ${v.name} is ${total}`);
      backward(ops.mulScalar(l.total, 1 / n));
      updateMemory(model.memory.tensor, out.embedded, seeds, v.videoLabel, cfg.memoryMomentum);
      parts.total += total / n;
      parts.video += l.video / n;
      parts.frame += l.frame / n;
      parts.background += l.background / n;
      parts.contrastive += l.contrastive / n;
    });
  }
  adam.step();
  return parts;
}

export async function trainStage1(ctx: Stage1Context, config: Partial<Stage1TrainConfig> = {}): Promise<Stage1TrainResult> {
  const cfg: Stage1TrainConfig = { ...STAGE1_TRAIN_DEFAULTS, ...config };
  const C = ctx.classNames.length;
  if (!ctx.train.length) throw new Error('trainStage1: no training videos');
  const D = ctx.train[0].D;
  for (const v of [...ctx.train, ...ctx.test])
    if (v.D !== D) throw new Error(`trainStage1: video ${v.name} has feature width ${v.D}, expected ${D} like the others`);
  if (!(cfg.batchSize >= 1 && cfg.iterations >= 1 && cfg.testEvery >= 1)) throw new Error('trainStage1: batchSize, iterations and testEvery must be positive');
  const paths = stage1Paths(ctx.out);
  fs.mkdirSync(ctx.out, { recursive: true });

  const { fit, holdout } = cfg.selection === 'holdout' ? holdoutSplit(ctx.train, cfg.holdoutFraction, cfg.seed) : { fit: ctx.train, holdout: [] };
  const modelRng = new Rng(cfg.seed);
  const dataRng = new Rng(cfg.seed + 1);
  const model = new Stage1Model({ ...cfg.model, featureDim: D, numClasses: C, device: ctx.device ?? 'cpu' }, modelRng);
  const adam = new Adam(model.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const bar = new ProgressBar('stage 1', cfg.iterations, { quiet: ctx.quiet, unit: 'it' });
  const log = ctx.log ?? ((s: string) => bar.log(s));

  let state: TrainState = {
    iteration: 0,
    adamStep: 0,
    modelRng: [],
    dataRng: [],
    order: [],
    cursor: 0,
    best: -1,
    bestIteration: 0,
    elapsed: 0,
  };
  let metricsLines: string[] = [];
  if (ctx.resume && fs.existsSync(paths.last)) {
    state = loadTrainState<TrainState>(paths.last, 'stage1-train-state', model, adam);
    modelRng.setState(state.modelRng);
    dataRng.setState(state.dataRng);
    metricsLines = readMetrics(paths.metrics, state.iteration);
    log(`stage 1: resuming from ${paths.last} at iteration ${state.iteration} (best avg mAP ${(100 * Math.max(0, state.best)).toFixed(2)} at ${state.bestIteration})`);
  } else {
    if (ctx.resume) log(`stage 1: nothing to resume in ${ctx.out}; starting fresh`);
    const { classesWithoutPoints } = initMemory(model, fit);
    if (classesWithoutPoints.length)
      log(`stage 1: no training points for class(es) ${classesWithoutPoints.map((c) => ctx.classNames[c]).join(', ')}; their prototypes start at zero`);
  }
  writeFileAtomic(paths.metrics, metricsLines.map((l) => l + '\n').join(''));
  writeFileAtomic(paths.config, JSON.stringify({ stage1: cfg, featureDim: D, classNames: ctx.classNames, train: fit.length, holdout: holdout.map((v) => v.name) }, null, 2));

  const pointMats = new Map(fit.map((v) => [v.name, pointMatrix(v, C)]));
  const stepsPerEpoch = Math.max(1, Math.floor(fit.length / cfg.batchSize));
  const nextVideo = (): Stage1Video => {
    if (state.cursor >= state.order.length) {
      state.order = dataRng.shuffle(fit.map((_, i) => i));
      state.cursor = 0;
    }
    return fit[state.order[state.cursor++]];
  };

  const t0 = Date.now() - state.elapsed * 1000;
  let best: EvalResult | null = null;
  let lastLoss = NaN;
  let interrupted = false;
  bar.update(state.iteration);
  const saveState = (): void => {
    state.adamStep = adam.stepCount;
    state.modelRng = modelRng.getState();
    state.dataRng = dataRng.getState();
    state.elapsed = (Date.now() - t0) / 1000;
    saveTrainState(paths.last, 'stage1-train-state', model, adam, state);
  };

  while (state.iteration < cfg.iterations) {
    if ((state.iteration % stepsPerEpoch) === 0) state.cursor = state.order.length; // a fresh loader, as the reference
    const batch = Array.from({ length: cfg.batchSize }, nextVideo);
    const parts = stage1Step(model, adam, batch, pointMats, cfg);
    state.iteration++;
    lastLoss = parts.total;
    bar.update(state.iteration, { loss: lastLoss });
    ctx.onIteration?.(state.iteration, parts);

    const testNow = state.iteration % cfg.testEvery === 0 || state.iteration === cfg.iterations;
    if (testNow) {
      const pass = testStage1(model, ctx.test, ctx.classNames, cfg, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth });
      const testAvg = meanMap(pass.evaluation!);
      let criterion = testAvg;
      let holdoutLine: MetricsLine['holdout'];
      if (holdout.length) {
        const h = testStage1(model, holdout, ctx.classNames, cfg, {}).evaluation!;
        criterion = meanMap(h);
        holdoutLine = { map: h.map, average: criterion };
      }
      const improved = criterion > state.best;
      if (improved) {
        state.best = criterion;
        state.bestIteration = state.iteration;
        best = pass.evaluation;
        saveStage1Model(paths.best, model, { iteration: String(state.iteration), selection: cfg.selection, criterion: String(criterion) });
        writeFileAtomic(paths.results, JSON.stringify({ version: 'VERSION 1.3', results: pass.results, external_data: { used: true, details: 'pstal stage 1' } }));
      }
      const line: MetricsLine = {
        iteration: state.iteration,
        elapsed: (Date.now() - t0) / 1000,
        loss: parts.total,
        losses: { video: parts.video, frame: parts.frame, background: parts.background, contrastive: parts.contrastive },
        test: { map: pass.evaluation!.map, average: testAvg, averages: { ...pass.evaluation!.averages } },
        holdout: holdoutLine,
        best: state.best,
        bestIteration: state.bestIteration,
      };
      fs.appendFileSync(paths.metrics, JSON.stringify(line) + '\n');
      writeMetricsPlot(ctx.out);
      log(
        `\nstage 1, iteration ${state.iteration}: test pass ${pass.seconds.toFixed(1)} s\n${formatMapTable(pass.evaluation!)}` +
          (holdoutLine ? `\nheld-out train mAP avg ${(100 * holdoutLine.average).toFixed(2)}` : '') +
          `\nbest ${cfg.selection} avg mAP ${(100 * state.best).toFixed(2)} at iteration ${state.bestIteration}${improved ? ' (new best, saved)' : ''}`,
      );
    }
    const checkpointNow = testNow || (cfg.checkpointEvery > 0 && state.iteration % cfg.checkpointEvery === 0);
    if (checkpointNow || state.iteration === cfg.iterations) saveState();
    await new Promise((r) => setImmediate(r)); // let Ctrl-C be seen between steps
    if (ctx.signal?.stop && state.iteration < cfg.iterations) {
      if (!checkpointNow) saveState();
      log(`\nstage 1: stopped at iteration ${state.iteration}; state saved to ${paths.last} (continue with --resume)`);
      interrupted = true;
      break;
    }
  }
  adam.dispose();
  return { model, iteration: state.iteration, bestIteration: state.bestIteration, bestMap: state.best, interrupted, best };
}
