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
 * Test video: its PP scored with the completeness of the original and of the refined proposal,
 * each added to the proposal's OIC score; the union goes through class-wise soft-NMS and the
 * ambiguous filter. Refined proposals that end before they start are dropped (the reference keeps
 * them; they can only be false positives).
 * RUN gets stage2_config.json, stage2_metrics.jsonl, stage2_best/last.safetensors and
 * stage2_results.json; `resume` continues from stage2_last exactly.
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
import { loadSafetensors, saveSafetensors } from '../../io/safetensors';
import { formatMapTable } from '../../eval/detection';
import type { DetectionResults, EvalResult, GroundTruth } from '../../eval/detection';
import type { Proposal } from '../../postprocess';
import { Device } from '../../runtime/backend';
import { loadTrainState, saveTrainState } from '../train_state';
import { Stage2Model, Stage2Options, refineProposals } from './stage2';
import { stage1Detections } from './inference';
import { RankedProposals, Span } from './ranking';
import { Stage1Video, meanMap, scoreResults } from './train_stage1';

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

/** RUN/proposals.json as finishStage1 writes it. */
export interface ProposalsFile {
  units?: Record<string, string>;
  train: Record<string, RankedProposals>;
  test: Record<string, { PP: Record<string, Span[]> }>;
}

export interface Stage2Context {
  out: string;
  classNames: string[];
  train: Stage1Video[];
  test: Stage1Video[];
  proposals: ProposalsFile;
  ambiguous?: Map<string, [number, number][]>;
  blockedVideos?: string[];
  testGroundTruth?: GroundTruth;
  device?: Device;
  resume?: boolean;
  quiet?: boolean;
  log?: (text: string) => void;
  /** set `stop` to end after the current batch, saving the training state */
  signal?: { stop: boolean };
  /** called after every batch (its 1-based number in the whole run) */
  onBatch?: (batch: number, losses: Stage2Losses) => void;
}

export interface Stage2Losses {
  total: number;
  score: number;
  reg: number;
}

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

const FILES = {
  config: 'stage2_config.json',
  metrics: 'stage2_metrics.jsonl',
  best: 'stage2_best.safetensors',
  last: 'stage2_last.safetensors',
  results: 'stage2_results.json',
};

export function stage2Paths(out: string): Record<keyof typeof FILES, string> {
  return Object.fromEntries(Object.entries(FILES).map(([k, f]) => [k, path.join(out, f)])) as Record<keyof typeof FILES, string>;
}

export function readProposalsFile(file: string): ProposalsFile {
  let p: ProposalsFile;
  try {
    p = JSON.parse(fs.readFileSync(file, 'utf8')) as ProposalsFile;
  } catch (e) {
    throw new Error(`${file}: cannot read stage-1 proposals (${(e as Error).message}); run stage 1 first`);
  }
  if (!p || typeof p.train !== 'object' || typeof p.test !== 'object') throw new Error(`${file}: expected {"train": {...}, "test": {...}} as stage 1 writes it`);
  return p;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** One training video's stage-2 inputs, in snippets: proposals [M, 2] (PP then NP) and the RP targets [K, 2]. */
export function trainingProposals(r: RankedProposals | undefined, snippetsPerSecond: number): { proposals: Float32Array; targets: Float32Array } {
  const props: number[] = [];
  const targets: number[] = [];
  if (r) {
    for (const spans of Object.values(r.PP ?? {})) for (const [s, e] of spans) props.push(round3(s * snippetsPerSecond), round3(e * snippetsPerSecond));
    for (const [s, e] of r.NP ?? []) props.push(s, e);
    for (const spans of Object.values(r.RP ?? {})) for (const sp of spans) if (sp) targets.push(round3(sp[0] * snippetsPerSecond), round3(sp[1] * snippetsPerSecond));
  }
  return { proposals: Float32Array.from(props), targets: Float32Array.from(targets) };
}

/** A test video's PP in snippets with their class and OIC score. */
export function testProposals(pp: Record<string, Span[]> | undefined, classNames: string[], snippetsPerSecond: number): { proposals: Float32Array; classIndex: Int32Array; score: Float32Array } {
  const props: number[] = [];
  const cls: number[] = [];
  const score: number[] = [];
  for (const [label, spans] of Object.entries(pp ?? {})) {
    const c = classNames.indexOf(label);
    if (c < 0) throw new Error(`stage 2: proposals.json names class '${label}', which is not in the dataset's classes`);
    for (const [s, e, sc] of spans) {
      props.push(round3(s * snippetsPerSecond), round3(e * snippetsPerSecond));
      cls.push(c);
      score.push(sc);
    }
  }
  return { proposals: Float32Array.from(props), classIndex: Int32Array.from(cls), score: Float32Array.from(score) };
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

/** Detections of one test video (seconds): original and refined proposals, fused scores, soft-NMS. */
export function stage2Detect(
  model: Stage2Model,
  v: Pick<Stage1Video, 'features' | 'T' | 'name'>,
  pp: { proposals: Float32Array; classIndex: Int32Array; score: Float32Array },
  classNames: string[],
  cfg: Pick<Stage2TrainConfig, 'secondsPerSnippet' | 'softNmsSigma' | 'exactIoU' | 'maxProposals'>,
  ambiguous?: Map<string, [number, number][]>,
): { detections: ReturnType<typeof stage1Detections>; candidates: Proposal[] } {
  const M = pp.proposals.length / 2;
  const sps = cfg.secondsPerSnippet;
  const candidates: Proposal[] = [];
  const refinedAll: Proposal[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    // chunks bound the RoI tensor (chunk x bins x D floats)
    const chunk = Math.max(1, cfg.maxProposals);
    for (let lo = 0; lo < M; lo += chunk) {
      const hi = Math.min(M, lo + chunk);
      const props = pp.proposals.subarray(2 * lo, 2 * hi);
      noGrad(() =>
        tidy(() => {
          const out = model.forward(model.proposalFeatures(v.features, v.T, props));
          const ref = refineProposals(props, out);
          const s1 = ref.start.toArray();
          const e1 = ref.end.toArray();
          const refined = new Float32Array(2 * (hi - lo));
          for (let i = 0; i < hi - lo; i++) {
            refined[2 * i] = s1[i];
            refined[2 * i + 1] = e1[i];
          }
          const c0 = out.completeness.toArray();
          const c1 = model.forward(model.proposalFeatures(v.features, v.T, refined)).completeness.toArray();
          for (let i = 0; i < hi - lo; i++) {
            const m = lo + i;
            candidates.push({ classIndex: pp.classIndex[m], score: c0[i] + pp.score[m], start: props[2 * i] * sps, end: props[2 * i + 1] * sps });
            if (e1[i] >= s1[i]) refinedAll.push({ classIndex: pp.classIndex[m], score: c1[i] + pp.score[m], start: s1[i] * sps, end: e1[i] * sps });
          }
        }),
      );
    }
  } finally {
    model.train(wasTraining);
  }
  candidates.push(...refinedAll);
  return { detections: stage1Detections(v.name, candidates, classNames, cfg, ambiguous), candidates };
}

export function testStage2(
  model: Stage2Model,
  videos: Stage1Video[],
  proposals: ProposalsFile,
  classNames: string[],
  cfg: Stage2TrainConfig,
  opts: { ambiguous?: Map<string, [number, number][]>; blockedVideos?: string[]; groundTruth?: GroundTruth; evaluate?: boolean } = {},
): { results: DetectionResults; evaluation: EvalResult | null; seconds: number } {
  const t0 = Date.now();
  const results: DetectionResults = {};
  for (const v of videos) {
    const pp = testProposals(proposals.test[v.name]?.PP, classNames, 1 / cfg.secondsPerSnippet);
    results[v.name] = stage2Detect(model, v, pp, classNames, cfg, opts.ambiguous).detections;
  }
  const evaluation = opts.evaluate !== false ? scoreResults(results, videos, classNames, cfg.tiou, opts) : null;
  return { results, evaluation, seconds: (Date.now() - t0) / 1000 };
}

export function saveStage2Model(file: string, model: Stage2Model, meta: Record<string, string> = {}): void {
  saveSafetensors(file, model.stateDict(), { pstal: 'stage2-model', featureDim: String(model.options.featureDim), ...meta });
}

export function loadStage2Weights(model: Stage2Model, file: string): Record<string, string> {
  const f = loadSafetensors(file);
  try {
    model.loadStateDict(new Map([...f.tensors].filter(([k]) => !k.startsWith('optimizer.'))));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return f.metadata;
}

interface Stage2State {
  epoch: number;
  /** batches done in the current epoch */
  batch: number;
  batches: number;
  order: number[];
  adamStep: number;
  modelRng: number[];
  dataRng: number[];
  best: number;
  bestEpoch: number;
  elapsed: number;
  /** the current epoch's loss sums (its metrics line averages them) */
  sum: { total: number; score: number; reg: number; n: number };
}

export async function trainStage2(ctx: Stage2Context, config: Partial<Stage2TrainConfig> = {}): Promise<Stage2TrainResult> {
  const cfg: Stage2TrainConfig = { ...STAGE2_TRAIN_DEFAULTS, ...config };
  if (!ctx.train.length) throw new Error('trainStage2: no training videos');
  if (!(cfg.batchSize >= 1 && cfg.epochs >= 1 && cfg.testEvery >= 1 && cfg.maxProposals >= 1))
    throw new Error('trainStage2: batchSize, epochs, testEvery and maxProposals must be positive');
  const D = ctx.train[0].D;
  const paths = stage2Paths(ctx.out);
  fs.mkdirSync(ctx.out, { recursive: true });
  const modelRng = new Rng(cfg.seed + 100);
  const dataRng = new Rng(cfg.seed + 101);
  const model = new Stage2Model({ ...cfg.model, featureDim: D, device: ctx.device ?? 'cpu' }, modelRng);
  const adam = new Adam(model.parameters(), { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const snippetsPerSecond = 1 / cfg.secondsPerSnippet;
  const inputs = ctx.train.map((v) => trainingProposals(ctx.proposals.train[v.name], snippetsPerSecond));
  const missing = ctx.train.filter((v) => !ctx.proposals.train[v.name]).length;
  const batchesPerEpoch = Math.max(1, Math.floor(ctx.train.length / cfg.batchSize));
  const bar = new ProgressBar('stage 2', cfg.epochs * batchesPerEpoch, { quiet: ctx.quiet, unit: 'batch' });
  const log = ctx.log ?? ((s: string) => bar.log(s));
  if (missing) log(`stage 2: ${missing} training video(s) have no stage-1 proposals; they contribute no loss`);

  let state: Stage2State = { epoch: 0, batch: 0, batches: 0, order: [], adamStep: 0, modelRng: [], dataRng: [], best: -1, bestEpoch: 0, elapsed: 0, sum: { total: 0, score: 0, reg: 0, n: 0 } };
  let metricsLines: string[] = [];
  if (ctx.resume && fs.existsSync(paths.last)) {
    state = loadTrainState<Stage2State>(paths.last, 'stage2-train-state', model, adam);
    modelRng.setState(state.modelRng);
    dataRng.setState(state.dataRng);
    if (fs.existsSync(paths.metrics))
      metricsLines = fs.readFileSync(paths.metrics, 'utf8').split('\n').filter((l) => l.trim() && (JSON.parse(l) as Stage2MetricsLine).epoch <= state.epoch);
    log(`stage 2: resuming from ${paths.last} at epoch ${state.epoch} batch ${state.batch} (best avg mAP ${(100 * Math.max(0, state.best)).toFixed(2)} at epoch ${state.bestEpoch})`);
  } else if (ctx.resume) log(`stage 2: nothing to resume in ${ctx.out}; starting fresh`);
  writeFileAtomic(paths.metrics, metricsLines.map((l) => l + '\n').join(''));
  writeFileAtomic(paths.config, JSON.stringify({ stage2: cfg, featureDim: D, classNames: ctx.classNames, train: ctx.train.length }, null, 2));

  const t0 = Date.now() - state.elapsed * 1000;
  const saveState = (): void => {
    state.adamStep = adam.stepCount;
    state.modelRng = modelRng.getState();
    state.dataRng = dataRng.getState();
    state.elapsed = (Date.now() - t0) / 1000;
    saveTrainState(paths.last, 'stage2-train-state', model, adam, state);
  };
  let best: EvalResult | null = null;
  let interrupted = false;
  bar.update(state.batches);
  model.train();
  outer: while (state.epoch < cfg.epochs) {
    if (state.batch === 0) {
      state.order = dataRng.shuffle(ctx.train.map((_, i) => i));
      state.sum = { total: 0, score: 0, reg: 0, n: 0 };
    }
    while (state.batch < batchesPerEpoch) {
      const idx = state.order.slice(state.batch * cfg.batchSize, (state.batch + 1) * cfg.batchSize);
      adam.zeroGrad();
      const parts: Stage2Losses = { total: 0, score: 0, reg: 0 };
      for (const i of idx) {
        const v = ctx.train[i];
        let { proposals, targets } = inputs[i];
        if (!proposals.length) continue;
        const M = proposals.length / 2;
        if (M > cfg.maxProposals) {
          const keep = dataRng.shuffle(Array.from({ length: M }, (_, m) => m)).slice(0, cfg.maxProposals);
          const sub = new Float32Array(2 * keep.length);
          keep.forEach((m, j) => sub.set(proposals.subarray(2 * m, 2 * m + 2), 2 * j));
          proposals = sub;
        }
        tidy(() => {
          const l = stage2Losses(model, v, proposals, targets, cfg.iouThreshold, dataRng);
          if (!Number.isFinite(l.score + l.reg)) throw new Error(`stage 2: the loss of video ${v.name} is not finite`);
          if (l.total) backward(ops.mulScalar(l.total, 1 / idx.length));
          parts.score += l.score / idx.length;
          parts.reg += l.reg / idx.length;
        });
      }
      parts.total = parts.score + parts.reg;
      adam.step();
      state.batch++;
      state.batches++;
      state.sum.total += parts.total;
      state.sum.score += parts.score;
      state.sum.reg += parts.reg;
      state.sum.n++;
      bar.update(state.batches, { loss: parts.total });
      ctx.onBatch?.(state.batches, parts);
      await new Promise((r) => setImmediate(r)); // let Ctrl-C be seen between batches
      if (ctx.signal?.stop && !(state.epoch === cfg.epochs - 1 && state.batch === batchesPerEpoch)) {
        saveState();
        log(`\nstage 2: stopped in epoch ${state.epoch + 1} after batch ${state.batch}; state saved to ${paths.last} (continue with --resume)`);
        interrupted = true;
        break outer;
      }
    }
    state.epoch++;
    state.batch = 0;
    if (state.epoch % cfg.testEvery === 0 || state.epoch === cfg.epochs) {
      const pass = testStage2(model, ctx.test, ctx.proposals, ctx.classNames, cfg, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth });
      const avg = meanMap(pass.evaluation!);
      const improved = avg > state.best;
      if (improved) {
        state.best = avg;
        state.bestEpoch = state.epoch;
        best = pass.evaluation;
        saveStage2Model(paths.best, model, { epoch: String(state.epoch), criterion: String(avg) });
        writeFileAtomic(paths.results, JSON.stringify({ version: 'VERSION 1.3', results: pass.results, external_data: { used: true, details: 'pstal stage 2' } }));
      }
      const sum = state.sum;
      const n = Math.max(1, sum.n);
      const line: Stage2MetricsLine = {
        epoch: state.epoch,
        batches: state.batches,
        elapsed: (Date.now() - t0) / 1000,
        loss: sum.total / n,
        losses: { score: sum.score / n, reg: sum.reg / n },
        test: { map: pass.evaluation!.map, average: avg, averages: { ...pass.evaluation!.averages } },
        best: state.best,
        bestEpoch: state.bestEpoch,
      };
      fs.appendFileSync(paths.metrics, JSON.stringify(line) + '\n');
      writeMetricsPlot(ctx.out);
      log(
        `\nstage 2, epoch ${state.epoch}: test pass ${pass.seconds.toFixed(1)} s\n${formatMapTable(pass.evaluation!)}` +
          `\nbest test avg mAP ${(100 * state.best).toFixed(2)} at epoch ${state.bestEpoch}${improved ? ' (new best, saved)' : ''}`,
      );
    }
    saveState();
  }
  adam.dispose();
  return { model, epoch: state.epoch, bestEpoch: state.bestEpoch, bestMap: state.best, best, interrupted };
}
