/**
 * limits.ts: the one table of upper bounds on the sizes a user can ask for, whatever the route:
 * command-line options (lib/cli/options.ts, lib/cli/training.ts, `pstal eval --tiou`, `pstal synth`),
 * YAML configs (lib/data/config.ts) and the data (lib/data/check.ts: feature widths and lengths).
 * Each bound is checked before any work starts, so a typo (24000000 for 2400, a step of 1e-9) is a
 * message naming the option, field or file instead of minutes of work, a full disk or a killed
 * process. The bounds are far above every shipped config and every real dataset; each says what it
 * bounds, and every message quotes it.
 */

export interface Limit {
  /** the largest value allowed */
  max: number;
  /** what it bounds, for messages */
  what: string;
}

export const LIMITS = {
  /** values in a threshold list (tIoU, the CAS and agnostic thresholds), given as a list or a range */
  listValues: { max: 1000, what: 'values in a threshold list (the shipped configs have 7 to 10)' },
  /** D of the features (config featureDim, --dim, synth --dim, a feature file's width) */
  featureDim: { max: 65536, what: 'the feature width D (I3D features have 2048)' },
  /** T of one video's features: 100,000 snippets of 16 frames at 25 fps are about 18 hours of video */
  snippets: { max: 100000, what: 'feature rows T of one video (100,000 snippets of 16 frames at 25 fps are about 18 hours)' },
  /** |x| of a feature value: training's products and sums overflow float32 (3.4e38) long before its range ends */
  featureMagnitude: { max: 1e6, what: "the magnitude of a feature value (no extractor's output comes near; near float32's range, training overflows)" },
  /** training iterations (stage 1, TSPNet) */
  iterations: { max: 10000000, what: 'training iterations' },
  /** stage-2 epochs */
  epochs: { max: 100000, what: 'training epochs' },
  /** videos a batch, absolute (stage 1 is also bounded by the training videos: see maxStage1Batch) */
  batchSize: { max: 4096, what: 'videos a batch' },
  /** proposals a training video (stage 2, TSPNet) */
  maxProposals: { max: 1000000, what: 'proposals a training video' },
  /** CPU worker threads (--threads, PSTAL_NUM_THREADS) */
  threads: { max: 4096, what: 'CPU threads' },
  /** the scale of the stage-1 temporal pooling, the ROI bins of stage 2 */
  scale: { max: 1000, what: 'the stage-1 scale' },
  roiBins: { max: 1000, what: 'ROI bins a proposal' },
  /** stage-1 top-k ratio */
  rAct: { max: 100000, what: 'the stage-1 top-k ratio rAct' },
  /** frames a snippet */
  snippetFrames: { max: 100000, what: 'frames a snippet' },
  /** stage 2 extends a proposal by this fraction of its length on each side (0.25): the zero padding grows with it */
  extension: { max: 10, what: "a proposal's extension on each side, as a fraction of its length (the shipped configs have 0.25)" },
  /** videos `pstal synth` writes */
  synthVideos: { max: 100000, what: 'videos a synthetic dataset' },
} as const satisfies Record<string, Limit>;

export type LimitName = keyof typeof LIMITS;

/**
 * null when `value` is within the limit, else the reason as "at most N (what)": the caller puts
 * the option, field or file in front.
 */
export function overLimit(name: LimitName, value: number): string | null {
  const l: Limit = LIMITS[name];
  return value > l.max ? `at most ${l.max} (${l.what})` : null;
}

/**
 * Stage 1 draws `batchSize` training videos an iteration, shuffling the list again whenever it runs
 * out, so a batch larger than the list repeats videos within one step: allowed up to 4 rounds of the
 * list (small datasets with the shipped batch of 16), or 64 videos, whichever is larger.
 */
export const BATCH_ROUNDS = 4;
export const BATCH_FLOOR = 64;

export function maxStage1Batch(trainVideos: number): number {
  return Math.min(LIMITS.batchSize.max, Math.max(BATCH_FLOOR, BATCH_ROUNDS * trainVideos));
}

/** The reason a stage-1 batch is too large for `trainVideos` training videos, or null. */
export function stage1BatchProblem(batch: number, trainVideos: number): string | null {
  const max = maxStage1Batch(trainVideos);
  if (batch <= max) return null;
  return (
    `${batch} videos a batch with ${trainVideos} training video(s) would go ${Math.ceil(batch / Math.max(1, trainVideos))} times round them in every step; ` +
    `at most max(${BATCH_FLOOR}, ${BATCH_ROUNDS} x the training videos) = ${max} is allowed`
  );
}
