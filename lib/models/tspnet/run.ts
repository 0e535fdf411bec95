/**
 * run.ts: TSPNet as one call (what `pstal train --method tspnet` does) and on new videos.
 *
 * train(): the base proposals of both subsets into RUN/proposals_{train,test}.json (from an HR-Pro
 * run folder, or copied from the given files after checking them), the points in the point file's
 * order, then the training loop; the best checkpoint's table at the end. With `resume` and the
 * proposals files already in RUN, they are reused as they are (the run goes on with the same inputs).
 *
 * loadTspNet(RUN) + detect(): the trained plug-in on a new video; its base proposals come from the
 * HR-Pro run the plug-in was trained on (recorded in tspnet_config.json), or are given by the caller.
 */
import { disposedError } from '../../util/dispose';
import type { RunControl } from '../../train/control';
import * as fs from 'fs';
import { progressCallback } from '../../util/progress';
import * as path from 'path';
import type { Dataset } from '../../data';
import { formatMapTable } from '../../eval/detection';
import type { Detection, EvalResult } from '../../eval/detection';
import { checkDevice, Device } from '../../runtime/backend';
import { Rng } from '../../util/rng';
import { TspNetConfig, TSPNET_DEFAULTS, tspnetConfigFrom, snippetsPerSecond } from './config';
import { TspNetModel } from './model';
import { readTspPoints } from './labels';
import { BaseProposal, BaseStage, hrproProposals, loadProposalsFor, readBaseProposals, toSnippets, writeBaseProposals } from './proposals';
import { tspnetPaths, loadTspNetWeights } from './checkpoint';
import { trainTspNet, TspNetContext, TspNetLosses } from './train';
import { testTspNet } from './evaluate';
import { ambiguousInSnippets, tspnetDetect } from './inference';
import { HrProModel, loadHrPro } from '../hrpro/detect';
import { scoreVideo, stage1Candidates, stage2Detect, Stage1Scores } from '../hrpro/inference';
import { testProposals } from '../hrpro/proposals';
import { packByClass } from '../../formats/proposals';
import { groupByClass } from '../hrpro/ranking';
import { stageContext } from '../hrpro/run';
import { DuplicateKeyError, readJsonFile } from '../../util/json';
import { readRunConfigIfPresent } from '../../formats/run_config';
import { fileDigest } from '../../train/resume';

export interface TspNetTrainOptions extends RunControl {
  dataset: Dataset;
  out: string;
  /** an HR-Pro run folder whose best checkpoints give the base proposals */
  base?: string;
  /** which HR-Pro stage: 1 (raw stage-1 candidates) or 2 (stage-2 detections); default 1 */
  baseStage?: BaseStage;
  /** or: ActivityNet-format proposals of the training and the test subset (seconds) */
  proposalsTrain?: string;
  proposalsTest?: string;
  config?: Partial<TspNetConfig>;
  /** on resume, a state trained on other base proposals than RUN's is removed and training starts again (default: the resume is refused) */
  restartStale?: boolean;
  onIteration?: (iteration: number, losses: TspNetLosses) => void;
}

export interface TspNetRunResult {
  interrupted: boolean;
  iteration: number;
  bestIteration: number;
  bestMap: number;
  evaluation: EvalResult | null;
  table: string | null;
}

/** What the config records about the base proposals' source (compared on resume: another source is refused). */
function baseSource(o: TspNetTrainOptions): object {
  if (o.base !== undefined) return { run: path.resolve(o.base), stage: o.baseStage ?? 1 };
  return { proposalsTrain: path.resolve(o.proposalsTrain ?? ''), proposalsTest: path.resolve(o.proposalsTest ?? '') };
}

/**
 * Writes RUN/proposals_{train,test}.json from the options' source; returns what the config records.
 * On resume with both files in RUN they are reused as they are (the run goes on with the inputs it
 * started with; the source given must be the recorded one, which the training loop checks).
 */
export function prepareProposals(o: TspNetTrainOptions): object {
  const files = tspnetPaths(o.out);
  const { dataset } = o;
  fs.mkdirSync(o.out, { recursive: true });
  if (o.base !== undefined && (o.proposalsTrain || o.proposalsTest)) throw new Error('tspnet: give either an HR-Pro base run or proposals files, not both');
  if (o.resume && fs.existsSync(files.proposalsTrain) && fs.existsSync(files.proposalsTest)) return baseSource(o);
  if (o.base !== undefined) {
    const stage = o.baseStage ?? 1;
    if (stage !== 1 && stage !== 2) throw new Error(`tspnet: the base stage must be 1 or 2, received ${stage}`);
    for (const [subset, videos, file] of [['train', dataset.train, files.proposalsTrain], ['test', dataset.test, files.proposalsTest]] as const) {
      const props = hrproProposals(o.base, stage, videos, dataset.classNames, {
        device: o.device,
        onVideo: progressCallback(`base proposals (${subset})`, { quiet: o.quiet, unit: 'videos' }),
      });
      writeBaseProposals(file, props, `HR-Pro stage ${stage} of ${path.resolve(o.base)}, ${subset} subset`);
    }
    return baseSource(o);
  }
  if (!o.proposalsTrain || !o.proposalsTest) throw new Error('tspnet: base proposals needed: an HR-Pro run (base) or both proposals files (proposalsTrain, proposalsTest)');
  const tb = timeBase(dataset);
  for (const [src, videos, file] of [[o.proposalsTrain, dataset.train, files.proposalsTrain], [o.proposalsTest, dataset.test, files.proposalsTest]] as const) {
    const props = readBaseProposals(src, videos, dataset.classNames, tb);
    writeBaseProposals(file, Object.fromEntries(props), `from ${path.resolve(src)}`);
  }
  return baseSource(o);
}

/**
 * A TSPNet state in `out` trained on other base proposals than RUN's proposals files (its HR-Pro
 * base went on): its files are removed, saying so, so that training starts again. What `pstal run
 * --method hrpro+tspnet --resume` does after the HR-Pro part changed.
 */
export function dropStaleTspNet(out: string, digests: Record<string, string>, log: (s: string) => void): void {
  const files = tspnetPaths(out);
  const rec = readRunConfigIfPresent(files.config);
  const was = rec?.inputs?.proposals;
  if (!rec || typeof was !== 'object' || JSON.stringify(was) === JSON.stringify(digests)) return;
  const removed = [files.last, files.best, files.metrics, files.results, files.config].filter((f) => fs.existsSync(f));
  for (const f of removed) fs.rmSync(f);
  if (removed.length) log(`tspnet: removed ${removed.map((f) => path.basename(f)).join(', ')}: trained on other base proposals than ${out}'s (the HR-Pro run went on); TSPNet starts again`);
}

const timeBase = (d: Dataset) => ({ featureFps: d.config.featureFps, snippetFrames: d.config.snippetFrames });

/** The digests of RUN's base proposals files. */
export function proposalDigests(out: string): Record<string, string> {
  const files = tspnetPaths(out);
  return { train: fileDigest(files.proposalsTrain), test: fileDigest(files.proposalsTest) };
}

/** The training context from a dataset and RUN's proposals files. */
export function tspnetContext(o: TspNetTrainOptions, cfg: TspNetConfig, base: object): TspNetContext {
  const { dataset } = o;
  const files = tspnetPaths(o.out);
  const stage = stageContext(dataset, o);
  return {
    // the dataset's videos, ambiguous list, blocked videos and test ground truth as HR-Pro's stages get them
    ...stage,
    // what it learns from: the data, and the base proposals (their digests, compared on resume)
    inputs: { ...stage.inputs, proposals: proposalDigests(o.out) },
    train: dataset.train,
    test: dataset.test,
    points: readTspPoints(dataset.root, dataset.train, dataset.classNames, timeBase(dataset)),
    proposals: {
      train: loadProposalsFor(files.proposalsTrain, dataset.train, dataset.classNames, cfg),
      test: loadProposalsFor(files.proposalsTest, dataset.test, dataset.classNames, cfg),
    },
    base,
    onIteration: o.onIteration,
  };
}

/** TSPNet end to end on a dataset: base proposals, training, the best checkpoint's test table. */
export async function train(o: TspNetTrainOptions): Promise<TspNetRunResult> {
  const log = o.log ?? ((s: string) => console.error(s));
  const cfg = tspnetConfigFrom(o.dataset.config, o.config ?? {});
  const base = prepareProposals(o);
  const ctx = tspnetContext({ ...o, log: o.log }, cfg, base);
  if (o.resume && o.restartStale) dropStaleTspNet(o.out, ctx.inputs!.proposals as Record<string, string>, log);
  const r = await trainTspNet(ctx, cfg);
  try {
    if (r.interrupted) return { interrupted: true, iteration: r.iteration, bestIteration: r.bestIteration, bestMap: r.bestMap, evaluation: null, table: null };
    // the best checkpoint's test pass (also when an earlier run, resumed here, wrote it)
    loadTspNetWeights(r.model, tspnetPaths(o.out).best);
    const pass = testTspNet(r.model, ctx.test, ctx.proposals.test, ctx.classNames, cfg, { ambiguous: ctx.ambiguous, blockedVideos: ctx.blockedVideos, groundTruth: ctx.testGroundTruth });
    const table = formatMapTable(pass.evaluation!);
    log(`tspnet: best checkpoint (iteration ${r.bestIteration}) on the test videos\n${table}`);
    return { interrupted: false, iteration: r.iteration, bestIteration: r.bestIteration, bestMap: r.bestMap, evaluation: pass.evaluation, table };
  } finally {
    r.model.dispose();
  }
}

// ----------------------------------------------------------------------------------------------
// a trained run on new videos
// ----------------------------------------------------------------------------------------------

export interface TspNetRun {
  run: string;
  classNames: string[];
  featureDim: number;
  cfg: TspNetConfig;
  model: TspNetModel;
  /** the HR-Pro base the plug-in was trained on, when it was trained from a run folder */
  base: HrProModel | null;
  baseStage: BaseStage | null;
  /** Frees the plug-in's and the base's weights; detect() on a disposed run throws, naming it. */
  dispose(): void;
  readonly disposed: boolean;
  [Symbol.dispose](): void;
}

export function loadTspNet(run: string, options: { device?: Device | string } = {}): TspNetRun {
  const device = checkDevice(options.device ?? 'cpu');
  const files = tspnetPaths(run);
  if (!fs.existsSync(files.best)) throw new Error(`${run}: no TSPNet checkpoint (${path.basename(files.best)}); train it first`);
  let c: { tspnet?: Partial<TspNetConfig>; featureDim?: number; classNames?: string[]; base?: { run?: string; stage?: BaseStage } | null };
  try {
    c = readJsonFile(files.config) as typeof c;
  } catch (e) {
    throw e instanceof DuplicateKeyError ? e : new Error(`${files.config}: ${(e as Error).message}`);
  }
  const featureDim = c.featureDim!;
  const classNames = c.classNames!;
  if (!(featureDim > 0) || !Array.isArray(classNames)) throw new Error(`${files.config}: missing featureDim or classNames`);
  const cfg: TspNetConfig = { ...TSPNET_DEFAULTS, ...(c.tspnet ?? {}) };
  const model = new TspNetModel({ ...cfg.model, featureDim, numClasses: classNames.length, device }, new Rng(0));
  loadTspNetWeights(model, files.best);
  model.eval();
  let base: HrProModel | null = null;
  const baseStage = c.base?.stage ?? null;
  if (c.base?.run) {
    if (!fs.existsSync(c.base.run)) {
      model.dispose();
      throw new Error(`${files.config}: the HR-Pro base run ${c.base.run} is gone; pass the proposals of the new videos instead`);
    }
    base = loadHrPro(c.base.run, { device });
  }
  let disposed = false;
  return {
    run, classNames, featureDim, cfg, model, base, baseStage,
    get disposed() {
      return disposed;
    },
    [Symbol.dispose]() {
      this.dispose();
    },
    dispose() {
      disposed = true;
      model.dispose();
      base?.dispose();
    },
  };
}

/**
 * Detections (seconds) in one video's features [T, D]. `proposals`: the base proposals (seconds);
 * default: the HR-Pro base run's, computed here as the training's were.
 */
export function detect(
  r: TspNetRun,
  features: Float32Array | { data: Float32Array; shape: number[] },
  options: { name?: string; proposals?: BaseProposal[]; ambiguous?: Map<string, [number, number][]> } = {},
): { detections: Detection[]; proposals: number; scores?: Stage1Scores } {
  if (r.disposed) throw disposedError(`the TSPNet model of ${r.run}`, 'detect');
  const D = r.featureDim;
  const data = features instanceof Float32Array ? features : features.data;
  if (!(features instanceof Float32Array) && (features.shape.length !== 2 || features.shape[1] !== D))
    throw new Error(`detect: features must be [T, ${D}] for this model, received [${features.shape.join(', ')}]`);
  if (!(data instanceof Float32Array) || data.length === 0 || data.length % D !== 0) throw new Error(`detect: ${data?.length} feature values are not a whole number of rows of D = ${D}`);
  const T = data.length / D;
  const name = options.name ?? 'video';
  let list = options.proposals;
  let scores: Stage1Scores | undefined;
  if (!list) {
    if (!r.base) throw new Error(`${r.run}: trained on proposals files, not an HR-Pro run: pass the new video's base proposals`);
    scores = scoreVideo(r.base.stage1, data, T, r.base.stage1Projections());
    const cands = stage1Candidates(scores, r.base.cfg1);
    let props = cands;
    if (r.baseStage === 2) {
      const pp = testProposals(packByClass(groupByClass(cands, r.classNames)), r.classNames, 1 / r.base.cfg2.secondsPerSnippet);
      props = stage2Detect(r.base.stage2!, { features: data, T, name }, pp, r.classNames, r.base.cfg2).detections.map((d) => ({
        classIndex: r.classNames.indexOf(d.label), score: d.score, start: d.segment[0], end: d.segment[1],
      }));
    }
    const end = T * r.base.cfg1.secondsPerSnippet;
    list = props.filter((p) => Math.min(end, p.end) > Math.max(0, p.start)).map((p) => ({ segment: [Math.max(0, p.start), Math.min(end, p.end)] as [number, number] }));
  }
  if (!list.length) return { detections: [], proposals: 0, scores };
  const vp = toSnippets(list, snippetsPerSecond(r.cfg), r.cfg.keepDuplicates);
  const amb = ambiguousInSnippets(options.ambiguous, r.cfg);
  return { detections: tspnetDetect(r.model, { features: data, T, name }, vp, r.classNames, r.cfg, amb).detections, proposals: vp.snippets.length / 2, scores };
}
