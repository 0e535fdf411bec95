/**
 * loop.ts: the training loop every method shares. A method supplies its model and optimizer, a
 * `step()` (one optimizer step: a stage-1 iteration, a stage-2 batch, a TSPNet iteration), an
 * `evaluate()` (a test pass and its selection criterion), and says when to test and checkpoint;
 * the loop owns the run folder's files:
 *
 *   <prefix>_config.json (or the name given)   the configuration used
 *   <prefix>_metrics.jsonl                      one JSON line per test, appended
 *   <prefix>_best.safetensors                   the best checkpoint by the criterion (atomic)
 *   <prefix>_last.safetensors                   model, Adam moments, RNG streams, counters: an exact resume
 *   <prefix>_results.json                       the best checkpoint's detections, ActivityNet format
 *   metrics.svg                                 the learning curves, redrawn after each test
 *
 * plus resume, the progress bar, and stop requests (Ctrl-C) between steps, which save the state.
 * A resume goes on only when the configuration, inputs and precision are those the run recorded
 * (lib/train/resume.ts: a difference is refused naming each field; a longer schedule, another
 * device or a moved data folder is accepted and recorded in the config's "changes"); a stage
 * `pstal import` wrote is finished and never trained over.
 */
import * as fs from 'fs';
import { Module } from '../nn/module';
import { backend } from '../runtime/backend';
import { isDetectAnomaly } from '../tensor/tensor';
import { Adam } from '../nn/optim';
import { Rng } from '../util/rng';
import { writeResults } from '../formats/results';
import { readMetrics, writeMetrics } from '../formats/metrics';
import { readRunConfigIfPresent, writeRunConfig } from '../formats/run_config';
import type { ConfigChange } from '../formats/run_config';
import { changesLine, checkResume, computeRecord, ResumeRules, withChanges } from './resume';
import { lockRunFolder } from '../util/lock';
import { OnProgress, ProgressBar, progressCallback } from '../util/progress';
import { writeMetricsPlot } from '../plot/metrics';
import { loadTrainState, saveTrainState } from './state';
import { formatMapTable } from '../eval/detection';
import type { DetectionResults, EvalResult } from '../eval/detection';

export interface RunFiles {
  config: string;
  metrics: string;
  best: string;
  last: string;
  results: string;
}

/** What a test gives the loop. */
export interface Evaluation {
  /** the selection criterion (higher is better): the test's or a held-out split's average mAP */
  criterion: number;
  /** the test split's evaluation, kept with the best checkpoint */
  evaluation: EvalResult;
  /** the test split's detections, written as the results file when the criterion improves */
  results: DetectionResults;
  /** extra lines for the log after the mAP table */
  note?: string;
  /** wall time of the test pass */
  seconds: number;
}

/** The loop's own counters, saved in the last checkpoint with the method's `extra` state. */
export interface LoopState<X> {
  loop: 1;
  step: number;
  adamStep: number;
  rngs: number[][];
  best: number;
  bestStep: number;
  elapsed: number;
  extra: X;
}

export interface LoopLine {
  step: number;
  elapsed: number;
  evaluation: Evaluation;
  best: number;
  bestStep: number;
}

export interface TrainingMethod<X, L extends { total: number }> {
  /** shown on the progress bar and in messages: 'stage 1' */
  label: string;
  /** the progress bar's unit: 'it', 'batch' */
  unit: string;
  /** the kind recorded in the last checkpoint (refused when it differs on resume) */
  kind: string;
  files: RunFiles;
  model: Module;
  adam: Adam;
  /** every random stream the method draws from, saved and restored in this order */
  rngs: Rng[];
  totalSteps: number;
  /** the configuration file's content (the loop adds "compute" and, after a resume that changed something, "changes") */
  config: object;
  /** what a resume may change (the schedule's length, fields no number depends on); everything else recorded must be as given */
  resumeRules?: ResumeRules;
  /** the method's own resumable state (data order, cursors, running sums): plain JSON */
  extra: X;
  /** called once on a fresh (not resumed) run, before the first step (e.g. memory initialisation) */
  start?(log: (text: string) => void): void;
  /** one optimizer step; `step` is the number of steps done before it */
  step(step: number): L;
  /** test after this many steps? */
  testAfter(step: number): boolean;
  /** also save the training state after this many steps (always after tests and the last step) */
  checkpointAfter?(step: number): boolean;
  /** a test pass; `progress` (done, total) drives a bar over its videos */
  evaluate(step: number, progress?: OnProgress): Evaluation;
  /** the metrics line of a test, in the method's words (iteration or epoch) */
  metricsLine(line: LoopLine, lastLosses: L): object;
  /** the step a metrics line was written at (resume keeps the lines up to the resumed step) */
  lineStep(line: Record<string, unknown>): number;
  /** where a test is in the method's words: 'iteration 50', 'epoch 3' */
  where(step: number): string;
  /** writes the best checkpoint (`criterion`: its selection value) */
  saveBest(file: string, step: number, criterion: number): void;
  /** what the results file says in external_data.details */
  resultsDetails: string;
}

export interface LoopOptions<L> {
  out: string;
  resume?: boolean;
  quiet?: boolean;
  log?: (text: string) => void;
  signal?: { stop: boolean };
  onStep?: (step: number, losses: L) => void;
}

export interface LoopResult {
  step: number;
  best: number;
  bestStep: number;
  bestEvaluation: EvalResult | null;
  interrupted: boolean;
}

export function meanMap(r: EvalResult): number {
  return r.map.reduce((a: number, b: number) => a + b, 0) / Math.max(1, r.map.length);
}


/**
 * The metrics lines up to `step` (resume); a line that does not parse (a file cut by an older
 * version's append) is dropped with a warning.
 */
function metricsUpTo(file: string, step: number, lineStep: (l: Record<string, unknown>) => number, log: (s: string) => void): string[] {
  const m = readMetrics(file);
  if (m.badLines.length) log(`warning: ${file}: ${m.badLines.length} line(s) that are not JSON dropped (a write cut short); they are recomputed`);
  return m.lines.filter((l) => {
    const s = lineStep(l.value);
    return typeof s === 'number' && s <= step;
  }).map((l) => l.text);
}

/** The names of the non-finite numbers of a losses record ('total', 'video'...), with their values. */
function nonFiniteLosses(losses: object): string[] {
  return Object.entries(losses)
    .filter(([, v]) => typeof v === 'number' && !Number.isFinite(v))
    .map(([k, v]) => `${k} = ${v}`);
}

/** The first parameter whose gradient (or value) holds NaN or Inf after a step: its name, what, where. */
export function nonFiniteParameter(model: Module): string | null {
  for (const [name, p] of model.namedParameters()) {
    for (const [what, t] of [['gradient', p.grad], ['value', p]] as const) {
      if (!t) continue;
      if ((backend(t.device).first_nonfinite(t.buffer) as number) < 0) continue; // native scan, no copy
      const a = t.toArray();
      let bad = -1;
      let count = 0;
      for (let i = 0; i < a.length; i++) {
        if (!Number.isFinite(a[i])) {
          if (bad < 0) bad = i;
          count++;
        }
      }
      if (bad >= 0) return `the ${what} of parameter '${name}' [${p.shape.join(', ')}] holds ${count} non-finite value(s) (first: ${a[bad]} at flat index ${bad})`;
    }
  }
  return null;
}

/** A training step that produced NaN or Inf: the step, the loss term or tensor, the checkpoint kept. */
export class NumericalError extends Error {}

/** An error of a step (or the start) with where it happened and what is kept; NaN/Inf ones are NumericalErrors. */
function stepError(where: string, e: unknown, kept: string): Error {
  const msg = e instanceof Error ? e.message : String(e);
  const numerical = /NaN|Infinity|non-finite/.test(msg);
  const hint = numerical && !isDetectAnomaly() ? '; PSTAL_DETECT_ANOMALY=1 with --resume names the op that makes the first NaN/Inf' : '';
  const err = new (numerical ? NumericalError : Error)(`${where}: ${msg}; ${kept}${hint}`);
  (err as Error & { cause?: unknown }).cause = e;
  return err;
}

export async function runTrainingLoop<X, L extends { total: number }>(m: TrainingMethod<X, L>, o: LoopOptions<L>): Promise<LoopResult> {
  // one writer a run folder (a second process is refused; a dead owner's lock and temporary files are cleaned)
  const lock = lockRunFolder(o.out);
  try {
    return await trainingLoop(m, o, lock.removedTemps);
  } finally {
    lock.release();
  }
}

async function trainingLoop<X, L extends { total: number }>(m: TrainingMethod<X, L>, o: LoopOptions<L>, removedTemps: string[]): Promise<LoopResult> {
  const bar = new ProgressBar(m.label, m.totalSteps, { quiet: o.quiet, unit: m.unit });
  const log = o.log ?? ((s: string) => bar.log(s));
  if (removedTemps.length) log(`${o.out}: removed ${removedTemps.length} temporary file(s) of writes cut short: ${removedTemps.join(', ')}`);
  let state: LoopState<X> = { loop: 1, step: 0, adamStep: 0, rngs: [], best: -1, bestStep: 0, elapsed: 0, extra: m.extra };
  let lines: string[] = [];
  const recorded = readRunConfigIfPresent(m.files.config);
  if (recorded?.imported)
    throw new Error(
      `${m.label}: ${m.files.config} records a checkpoint imported by \`pstal import\` (from ${(recorded.imported as { from?: string }).from ?? 'elsewhere'}): ` +
        `a finished stage, not trained over here (\`pstal run --resume\` goes on from it; to train this stage here, start afresh: --force without --resume)`,
    );
  const given: Record<string, unknown> = { ...(m.config as Record<string, unknown>), compute: computeRecord(m.model.parameters()[0]?.device) };
  let changes: ConfigChange[] | undefined;
  if (o.resume && fs.existsSync(m.files.last)) {
    // what decides the numbers must be what the run recorded (refused otherwise, before anything is written)
    const check = recorded ? checkResume(m.label, m.files.config, recorded, given, m.resumeRules) : null;
    if (!recorded) log(`warning: ${m.label}: ${m.files.config} is missing, so the settings of the run in ${m.files.last} cannot be compared with these`);
    if (check?.unchecked.length) log(`${m.label}: ${m.files.config} does not record ${check.unchecked.join(', ')} (a run of an older version): not compared`);
    state = loadTrainState<LoopState<X>>(m.files.last, m.kind, m.model, m.adam);
    if (state.loop !== 1) throw new Error(`${m.files.last}: a training state of an older pstal; train afresh, or resume with the version that wrote it`);
    if (state.step > m.totalSteps) throw new Error(`${m.label}: ${m.files.last} is at ${m.where(state.step)}, past the ${m.totalSteps} steps given; a schedule may be lengthened on resume, not shortened`);
    if (check?.accepted.length) log(changesLine(m.label, check.accepted, m.where(state.step)));
    changes = withChanges(recorded?.changes, check?.accepted ?? [], state.step, m.where(state.step));
    m.rngs.forEach((r, i) => r.setState(state.rngs[i]));
    m.extra = state.extra;
    lines = metricsUpTo(m.files.metrics, state.step, m.lineStep, log);
    log(`${m.label}: resuming from ${m.files.last} at ${m.where(state.step)} (best avg mAP ${(100 * Math.max(0, state.best)).toFixed(2)} at ${m.where(state.bestStep)})`);
  } else {
    if (o.resume) log(`${m.label}: nothing to resume in ${o.out}; starting fresh`);
    try {
      m.start?.(log);
    } catch (e) {
      throw stepError(`${m.label}, start (before the first ${m.unit})`, e, 'no training state was saved yet (nothing to resume)');
    }
  }
  writeMetrics(m.files.metrics, lines);
  writeRunConfig(m.files.config, { ...given, ...(changes?.length ? { changes } : {}) });

  const t0 = Date.now() - state.elapsed * 1000;
  const saveState = (): void => {
    state.adamStep = m.adam.stepCount;
    state.rngs = m.rngs.map((r) => r.getState());
    state.extra = m.extra;
    state.elapsed = (Date.now() - t0) / 1000;
    saveTrainState(m.files.last, m.kind, m.model, m.adam, state);
  };
  let bestEvaluation: EvalResult | null = null;
  let interrupted = false;
  bar.update(state.step);
  let lastSaved = state.step;
  const lastGood = (): string =>
    lastSaved > 0 && fs.existsSync(m.files.last)
      ? `the last good state is ${m.files.last} (${m.where(lastSaved)}), kept as it was; \`--resume\` goes on from it`
      : `no training state was saved yet (nothing to resume)`;
  while (state.step < m.totalSteps) {
    let losses: L;
    try {
      losses = m.step(state.step);
    } catch (e) {
      throw stepError(`${m.label}, ${m.where(state.step + 1)}`, e, lastGood());
    }
    const badLosses = nonFiniteLosses(losses);
    const badParam = badLosses.length ? null : nonFiniteParameter(m.model);
    if (badLosses.length || badParam)
      throw new NumericalError(
        `${m.label}, ${m.where(state.step + 1)}: ${badLosses.length ? `loss term(s) ${badLosses.join(', ')}` : badParam}; training stopped before saving it. ` +
          `${lastGood()}. Check the input features for NaN/Inf (\`pstal check\`) or lower the learning rate` +
          (isDetectAnomaly() ? '.' : '; PSTAL_DETECT_ANOMALY=1 with --resume names the op that makes the first NaN/Inf.'),
      );
    state.step++;
    bar.update(state.step, { loss: losses.total });
    o.onStep?.(state.step, losses);
    const testNow = m.testAfter(state.step) || state.step === m.totalSteps;
    if (testNow) {
      const e = m.evaluate(state.step, progressCallback(`${m.label} test`, { quiet: o.quiet, unit: 'videos' }));
      const improved = e.criterion > state.best;
      if (improved) {
        state.best = e.criterion;
        state.bestStep = state.step;
        bestEvaluation = e.evaluation;
        m.saveBest(m.files.best, state.step, e.criterion);
        writeResults(m.files.results, e.results, m.resultsDetails);
      }
      const line = m.metricsLine({ step: state.step, elapsed: (Date.now() - t0) / 1000, evaluation: e, best: state.best, bestStep: state.bestStep }, losses);
      lines.push(JSON.stringify(line));
      writeMetrics(m.files.metrics, lines);
      writeMetricsPlot(o.out);
      log(
        `\n${m.label}, ${m.where(state.step)}: test pass ${e.seconds.toFixed(1)} s\n${formatMapTable(e.evaluation)}` +
          (e.note ? `\n${e.note}` : '') +
          `\nbest avg mAP ${(100 * state.best).toFixed(2)} at ${m.where(state.bestStep)}${improved ? ' (new best, saved)' : ''}`,
      );
    }
    const checkpointNow = testNow || Boolean(m.checkpointAfter?.(state.step));
    if (checkpointNow || state.step === m.totalSteps) {
      saveState();
      lastSaved = state.step;
    }
    await new Promise((r) => setImmediate(r)); // let Ctrl-C be seen between steps
    if (o.signal?.stop && state.step < m.totalSteps) {
      if (!checkpointNow) saveState();
      lastSaved = state.step;
      log(`\n${m.label}: stopped at ${m.where(state.step)}; state saved to ${m.files.last} (continue with --resume)`);
      interrupted = true;
      break;
    }
  }
  m.adam.dispose();
  return { step: state.step, best: state.best, bestStep: state.bestStep, bestEvaluation, interrupted };
}
