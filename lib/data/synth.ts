/**
 * synth.ts: synthetic datasets in the standard layout (SPEC §1), for tests, demos and benchmarks
 * when the real I3D features are not at hand.
 *
 * Layout written under `out`:
 *   gt_full.json                         {"database": {video: {subset, duration, fps, annotations}}}
 *   split_train.txt, split_test.txt      one video name a line
 *   point_labels/point_gaussian.csv      class,class_index,start_frame,stop_frame,video_id,point
 *   Ambiguous_test.txt                   "video  start end" lines
 *   features/{train,test}/<video>.npy    float32 [T, D], T = floor(duration * 25 / 16)
 *
 * With `annotations` (a real annotation folder such as THUMOS14's) the annotation files are
 * copied as they are and only the features are invented; without it THUMOS-like annotations are
 * invented too.
 *
 * The features are meant to be realistically hard: no single dimension and not the norm separate
 * action snippets from background, while the class structure is learnable. Each snippet is
 *   x_t = g( z_t B + n_t )
 * where B [K, D] is a fixed basis (class directions, background scene directions, instance style
 * directions, slow latent noise directions) drawn from the seed only, z_t [K] the latent state of
 * the video at snippet t (class activations with a mid-instance peak fading toward the boundaries,
 * context "hard negatives" before and after instances, scene clusters switching every tens of
 * seconds, AR(1) latent noise), n_t per-element AR(1) noise, and g a smooth ReLU (I3D features
 * are averages of post-ReLU activations, so they are non-negative). The per-element pass (noise,
 * low-rank product, ReLU) runs in the native op synth_features (native/cpu/synth.cc, threaded,
 * our GEMM) with a TypeScript fallback; the noise reads a precomputed normal table instead of
 * drawing 450M normals, so the full THUMOS14 set at D = 2048 takes seconds.
 *
 * Every video's latent state comes from an Rng seeded by a hash of (seed, video name), and the
 * basis and noise table from the seed only, so a video's features do not depend on --videos or on
 * the order of generation.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Rng } from '../util/rng';
import { writeNpy } from './npy';
import { readRegularFile, writeFileAtomic } from '../util/fs';
import { samePath, videoFile } from '../util/paths';
import { overLimit } from '../util/limits';
import { GT_FILE, GtSegment, TimedGtVideo, readGroundTruth, requireTiming, writeGroundTruth } from '../formats/ground_truth';
import { POINT_FILE, POINT_HEADER, writePointLabels } from '../formats/point_labels';
import { AMBIGUOUS_FILE, Split, readSplit, splitFile, writeAmbiguous, writeSplit } from '../formats/splits';

export const THUMOS14_CLASSES = [
  'BaseballPitch', 'BasketballDunk', 'Billiards', 'CleanAndJerk', 'CliffDiving', 'CricketBowling', 'CricketShot',
  'Diving', 'FrisbeeCatch', 'GolfSwing', 'HammerThrow', 'HighJump', 'JavelinThrow', 'LongJump', 'PoleVault',
  'Shotput', 'SoccerPenalty', 'TennisSwing', 'ThrowDiscus', 'VolleyballSpiking',
];

/** Snippet rate of the I3D features: 16 frames at 25 fps a snippet (SPEC §1). */
const SNIPPETS_PER_SECOND = 25 / 16;

export interface SynthKnobs {
  // ---- invented annotations (ignored with `annotations`) ----
  /** multiplies every invented video duration (0.2 gives small, fast datasets) */
  durationScale: number;
  /** median video duration in seconds (log-normal, like THUMOS14's 155 s median) */
  durationMedian: number;
  /** log-normal sigma of the video duration */
  durationSigma: number;
  /** bounds of a video duration in seconds (before durationScale) */
  durationMin: number;
  durationMax: number;
  /** median number of instances a video (log-normal, clipped to [1, maxInstances]) */
  instancesMedian: number;
  instancesSigma: number;
  maxInstances: number;
  /** probability that a video has a second action class (THUMOS14 videos mostly have one) */
  secondClassProb: number;
  /** median instance length in seconds (log-normal, THUMOS14: 3 s median, 5-95% 0.8-10.7 s) */
  instanceMedian: number;
  instanceSigma: number;
  /** probability that a test video gets ambiguous segments in Ambiguous_test.txt */
  ambiguousProb: number;
  /** mean and spread of a point's offset from the instance center, in instance lengths
   *  (measured on THUMOS14's point_gaussian.csv: mean -0.015, std 0.035) */
  pointOffsetMean: number;
  pointOffsetStd: number;

  // ---- features ----
  /** share of a class direction common with its group of related classes (0: independent) */
  classCorrelation: number;
  /** classes per group of related directions */
  classGroupSize: number;
  /** peak amplitude of the class direction at an instance's middle */
  actionStrength: number;
  /** relative jitter (std) of an instance's amplitude */
  amplitudeJitter: number;
  /** amplitude of another class's direction mixed into an instance (uniform in [0, this]) */
  mixIn: number;
  /** number of instance style directions and their amplitude (per-instance variation) */
  styleDirections: number;
  styleStrength: number;
  /** how much the strength fades toward an instance's ends: 0 flat, 1 down to zero at the boundary */
  edgeFade: number;
  /** fraction of the instance (centred) at full strength; the rest follows a raised cosine */
  plateau: number;
  /** context snippets next to an instance (hard negatives): their extent in seconds and strength
   *  relative to the instance's own amplitude */
  contextSeconds: number;
  contextStrength: number;
  /** background scene directions shared by all videos, and how many of them belong to each class
   *  (class-typical scenes: a billiards table is on screen around the shots too) */
  sceneModes: number;
  classScenes: number;
  /** probability a scene segment picks one of the main class's scenes */
  classSceneProb: number;
  /** scenes a video draws from (min, max) and the mean scene segment length in seconds */
  scenesMin: number;
  scenesMax: number;
  sceneSeconds: number;
  /** scene amplitude, and the fraction of it an action replaces (keeps the norm from giving the
   *  action away) */
  sceneStrength: number;
  sceneDuck: number;
  /** slow latent noise: directions, amplitude, lag-1 autocorrelation */
  latentNoiseDirections: number;
  latentNoiseStrength: number;
  latentNoiseAr: number;
  /** zero-phase exponential smoothing of the latent state (the temporal receptive field of I3D) */
  smoothing: number;
  /** per-element noise: std and lag-1 autocorrelation */
  noiseStd: number;
  noiseAr: number;
  /** offset before the smooth ReLU, and the ReLU's soft width (|x| < width is quadratic) */
  offset: number;
  reluWidth: number;
  /** final scale of the features */
  scale: number;
}

export const SYNTH_DEFAULTS: SynthKnobs = {
  durationScale: 1,
  durationMedian: 150,
  durationSigma: 0.7,
  durationMin: 20,
  durationMax: 900,
  instancesMedian: 7,
  instancesSigma: 0.9,
  maxInstances: 30,
  secondClassProb: 0.2,
  instanceMedian: 3,
  instanceSigma: 0.75,
  ambiguousProb: 0.3,
  pointOffsetMean: -0.015,
  pointOffsetStd: 0.035,

  classCorrelation: 0.35,
  classGroupSize: 4,
  actionStrength: 0.9,
  amplitudeJitter: 0.3,
  mixIn: 0.35,
  styleDirections: 8,
  styleStrength: 0.3,
  edgeFade: 0.7,
  plateau: 0.3,
  contextSeconds: 4,
  contextStrength: 0.35,
  sceneModes: 32,
  classScenes: 2,
  classSceneProb: 0.6,
  scenesMin: 2,
  scenesMax: 5,
  sceneSeconds: 30,
  sceneStrength: 1.0,
  sceneDuck: 0.35,
  latentNoiseDirections: 12,
  latentNoiseStrength: 0.35,
  latentNoiseAr: 0.9,
  smoothing: 0.35,
  noiseStd: 0.5,
  noiseAr: 0.75,
  offset: -0.2,
  reluWidth: 0.6,
  scale: 0.5,
};

export interface SynthOptions {
  out: string;
  /** a real annotation folder to keep, e.g. ../shared/data/THUMOS14 */
  annotations?: string;
  /** feature width D (2048) */
  dim?: number;
  seed?: number;
  /** invented dataset: total videos (default 100: half train, half test); with annotations:
   *  use only the first N of each split */
  videos?: number;
  knobs?: Partial<SynthKnobs>;
  onProgress?: (done: number, total: number) => void;
  /** 'js' forces the TypeScript kernel (tests compare it with the native one); default: native
   *  when the addon loads */
  kernel?: 'native' | 'js';
}

export interface SynthSummary {
  out: string;
  train: number;
  test: number;
  dim: number;
  snippets: number;
  seconds: number;
  classes: string[];
}

type GtDatabase = Map<string, TimedGtVideo>;

// ---- random helpers ----------------------------------------------------------------------------

/** FNV-1a over the name, mixed with the seed: the per-video Rng seed. */
export function videoSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h >>> 0;
}

function logNormal(rng: Rng, median: number, sigma: number): number {
  return median * Math.exp(sigma * rng.normal());
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

// ---- invented annotations ----------------------------------------------------------------------

function inventVideo(name: string, subset: string, seed: number, k: SynthKnobs): TimedGtVideo {
  const rng = new Rng(videoSeed(seed, 'annotations:' + name));
  const C = THUMOS14_CLASSES.length;
  const duration = round1(
    Math.max(4, Math.min(k.durationMax, Math.max(k.durationMin, logNormal(rng, k.durationMedian, k.durationSigma))) * k.durationScale),
  );
  const main = rng.int(C);
  const classes = [main];
  if (rng.uniform() < k.secondClassProb) {
    // a related class most of the time (CricketBowling with CricketShot, ...)
    const g = Math.floor(main / k.classGroupSize) * k.classGroupSize;
    let other = rng.uniform() < 0.7 ? g + rng.int(Math.min(k.classGroupSize, C - g)) : rng.int(C);
    if (other === main) other = (main + 1) % C;
    classes.push(other);
  }
  const wanted = Math.max(1, Math.min(k.maxInstances, Math.round(logNormal(rng, k.instancesMedian, k.instancesSigma))));
  const placed: Record<number, [number, number][]> = {};
  const annotations: GtSegment[] = [];
  for (let n = 0; n < wanted; n++) {
    const c = classes.length > 1 && rng.uniform() < 0.35 ? classes[1] : classes[0];
    const list = (placed[c] ??= []);
    for (let attempt = 0; attempt < 30; attempt++) {
      const len = Math.max(0.3, Math.min(30, logNormal(rng, k.instanceMedian, k.instanceSigma), duration * 0.5));
      const s = round1(rng.uniform() * (duration - len));
      const e = round1(Math.min(duration, s + len));
      if (e - s < 0.2) continue;
      // non-overlapping within a class, with a gap of at least 0.5 s
      if (list.some(([a, b]) => s < b + 0.5 && e > a - 0.5)) continue;
      list.push([s, e]);
      annotations.push({ label: THUMOS14_CLASSES[c], segment: [s, e] });
      break;
    }
  }
  annotations.sort((a, b) => a.label.localeCompare(b.label) || a.segment[0] - b.segment[0]);
  const fps = 30;
  for (const a of annotations) a.labelId = THUMOS14_CLASSES.indexOf(a.label);
  return { subset, duration, fps, annotations };
}

function pointRows(name: string, v: TimedGtVideo, classes: string[], seed: number, k: SynthKnobs): (string | number)[][] {
  const rng = new Rng(videoSeed(seed, 'points:' + name));
  const rows: (string | number)[][] = [];
  for (const a of v.annotations) {
    const s = Math.round(a.segment[0] * v.fps);
    const e = Math.round(a.segment[1] * v.fps);
    const off = k.pointOffsetMean + k.pointOffsetStd * rng.normal();
    const p = Math.max(s, Math.min(e, Math.round((s + e) / 2 + off * (e - s))));
    rows.push([a.label, classes.indexOf(a.label), s, e, name, p]);
  }
  return rows;
}

function ambiguousRows(name: string, v: TimedGtVideo, seed: number, k: SynthKnobs): string[] {
  const rng = new Rng(videoSeed(seed, 'ambiguous:' + name));
  if (rng.uniform() >= k.ambiguousProb) return [];
  const rows: string[] = [];
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    // ambiguous segments sit next to instances in THUMOS14 (a partly visible or unclear action)
    const a = v.annotations.length ? v.annotations[rng.int(v.annotations.length)] : undefined;
    const len = 0.5 + rng.uniform() * 3;
    const s = a ? Math.max(0, a.segment[1] + 0.5 + rng.uniform() * 5) : rng.uniform() * Math.max(0, v.duration - len);
    const e = Math.min(v.duration, s + len);
    if (e - s >= 0.2) rows.push(`${name}  ${round1(s).toFixed(1)} ${round1(e).toFixed(1)}`);
  }
  return rows;
}

// ---- the fixed basis and noise table (seed only) -----------------------------------------------

interface Basis {
  /** [K, D] row-major */
  B: Float32Array;
  K: number;
  classRow: number;
  sceneRow: number;
  styleRow: number;
  latentRow: number;
  /** normal table for the per-element noise */
  table: Float32Array;
}

const NOISE_TABLE = 1 << 20;

function makeBasis(seed: number, D: number, C: number, k: SynthKnobs): Basis {
  const rng = new Rng(videoSeed(seed, 'basis'));
  const groups = Math.ceil(C / k.classGroupSize);
  const K = C + k.sceneModes + k.styleDirections + k.latentNoiseDirections;
  const B = new Float32Array(K * D);
  const gauss = (n: number): Float32Array => {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = rng.normal();
    return v;
  };
  // class directions: a group direction shared by related classes plus the class's own part;
  // entries have unit variance, so a latent coefficient is in units of per-element std
  const groupDirs = Array.from({ length: groups }, () => gauss(D));
  const shared = gauss(D);
  const rho = k.classCorrelation;
  for (let c = 0; c < C; c++) {
    const g = groupDirs[Math.floor(c / k.classGroupSize)];
    const own = gauss(D);
    for (let d = 0; d < D; d++)
      B[c * D + d] = Math.sqrt(1 - rho) * own[d] + Math.sqrt(rho * 0.75) * g[d] + Math.sqrt(rho * 0.25) * shared[d];
  }
  for (let r = C; r < K; r++) B.set(gauss(D), r * D);
  const table = new Float32Array(NOISE_TABLE + D);
  for (let i = 0; i < table.length; i++) table[i] = rng.normal();
  return { B, K, classRow: 0, sceneRow: C, styleRow: C + k.sceneModes, latentRow: C + k.sceneModes + k.styleDirections, table };
}

// ---- the latent state of one video -------------------------------------------------------------

/** Strength of an action at relative position u in [0, 1] of the instance. */
export function actionProfile(u: number, edgeFade: number, plateau: number): number {
  const half = (1 - plateau) / 2;
  let w = 1;
  if (half > 0) {
    const dist = Math.min(u, 1 - u); // distance to the nearest boundary, in instance lengths
    if (dist < half) w = 0.5 - 0.5 * Math.cos((Math.PI * Math.max(0, dist)) / half);
  }
  return 1 - edgeFade * (1 - w);
}

function latentState(name: string, v: TimedGtVideo, T: number, classes: string[], basis: Basis, seed: number, k: SynthKnobs): Float32Array {
  const rng = new Rng(videoSeed(seed, 'features:' + name));
  const K = basis.K;
  const C = classes.length;
  const Z = new Float32Array(T * K);
  const dt = 1 / SNIPPETS_PER_SECOND;
  const time = (t: number): number => (t + 0.5) * dt;

  // class-typical scenes: class c owns scenes [c * classScenes, ...) modulo the pool
  const counts = new Map<number, number>();
  for (const a of v.annotations) {
    const c = classes.indexOf(a.label);
    if (c >= 0) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  const mainClass = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? rng.int(C);
  const nScenes = k.scenesMin + rng.int(Math.max(1, k.scenesMax - k.scenesMin + 1));
  const scenes: number[] = [];
  for (let i = 0; i < nScenes; i++)
    scenes.push(
      rng.uniform() < k.classSceneProb
        ? (mainClass * k.classScenes + rng.int(k.classScenes)) % k.sceneModes
        : rng.int(k.sceneModes),
    );
  const sceneAmp = scenes.map(() => k.sceneStrength * (0.7 + 0.6 * rng.uniform()));
  // scene segments of exponential length; a secondary scene blends in at a random weight
  let t = 0;
  while (t < T) {
    const len = Math.max(1, Math.round((-Math.log(1 - rng.uniform() * 0.999) * k.sceneSeconds) / dt));
    const i = rng.int(nScenes);
    const j = rng.int(nScenes);
    const wj = 0.4 * rng.uniform();
    for (let u = t; u < Math.min(T, t + len); u++) {
      Z[u * K + basis.sceneRow + scenes[i]] += sceneAmp[i] * (1 - wj);
      Z[u * K + basis.sceneRow + scenes[j]] += sceneAmp[j] * wj;
    }
    t += len;
  }

  // actions: profile-shaped class activation, mix-in and style, context on both sides, scene duck
  const act = new Float32Array(T); // total action strength a snippet, for the duck
  for (const a of v.annotations) {
    const c = classes.indexOf(a.label);
    if (c < 0) continue;
    const [s, e] = a.segment;
    const len = Math.max(e - s, 1e-3);
    const amp = k.actionStrength * Math.max(0.2, 1 + k.amplitudeJitter * rng.normal());
    let other = rng.int(C);
    if (other === c) other = (c + 1) % C;
    const mix = k.mixIn * rng.uniform();
    const style = new Float32Array(k.styleDirections);
    for (let i = 0; i < style.length; i++) style[i] = k.styleStrength * rng.normal();
    const t0 = Math.max(0, Math.floor((s - k.contextSeconds) / dt));
    const t1 = Math.min(T - 1, Math.ceil((e + k.contextSeconds) / dt));
    for (let u = t0; u <= t1; u++) {
      const x = time(u);
      let w: number;
      if (x >= s && x <= e) w = actionProfile((x - s) / len, k.edgeFade, k.plateau);
      else {
        // hard negatives: context carrying part of the class direction, fading with distance
        const dist = x < s ? s - x : x - e;
        if (k.contextSeconds <= 0 || dist > k.contextSeconds) continue;
        w = k.contextStrength * (1 - dist / k.contextSeconds);
        w *= 1 - k.edgeFade * 0.5; // no stronger than the instance's own ends
      }
      const row = u * K;
      Z[row + basis.classRow + c] += amp * w;
      Z[row + basis.classRow + other] += amp * w * mix;
      for (let i = 0; i < style.length; i++) Z[row + basis.styleRow + i] += amp * w * style[i];
      if (x >= s && x <= e) act[u] = Math.max(act[u], w);
    }
  }
  if (k.sceneDuck > 0)
    for (let u = 0; u < T; u++) {
      const f = 1 - k.sceneDuck * Math.min(1, act[u]);
      for (let m = 0; m < k.sceneModes; m++) Z[u * K + basis.sceneRow + m] *= f;
    }

  // slow latent noise: AR(1) series per direction
  const L = k.latentNoiseDirections;
  const phi = k.latentNoiseAr;
  const innov = k.latentNoiseStrength * Math.sqrt(1 - phi * phi);
  for (let i = 0; i < L; i++) {
    let y = k.latentNoiseStrength * rng.normal();
    for (let u = 0; u < T; u++) {
      y = phi * y + innov * rng.normal();
      Z[u * K + basis.latentRow + i] += y;
    }
  }

  // zero-phase smoothing of everything but the latent noise (already smooth): forward then
  // backward exponential filter, which blurs boundaries like a wide temporal receptive field
  const a = k.smoothing;
  if (a > 0 && T > 1)
    for (let r = 0; r < basis.latentRow; r++) {
      for (let u = 1; u < T; u++) Z[u * K + r] = (1 - a) * Z[u * K + r] + a * Z[(u - 1) * K + r];
      for (let u = T - 2; u >= 0; u--) Z[u * K + r] = (1 - a) * Z[u * K + r] + a * Z[(u + 1) * K + r];
    }
  return Z;
}

// ---- features ----------------------------------------------------------------------------------

/** The per-element pass: AR(1) noise rows from the table, + Z B, smooth ReLU (native/cpu/synth.cc). */
type FeatureKernel = (
  X: Float32Array, Z: Float32Array, B: Float32Array, table: Float32Array, off: Int32Array, scale: Float32Array,
  T: number, D: number, K: number, phi: number, offset: number, width: number, outScale: number,
) => void;

let kernel: FeatureKernel | undefined;

/** The native kernel when the addon loads (and has it), else the same computation in TypeScript. */
function featureKernel(): FeatureKernel {
  if (kernel) return kernel;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { cpu } = require('../runtime/native') as typeof import('../runtime/native');
    const addon = cpu();
    if (typeof addon.synth_features === 'function') kernel = addon.synth_features as FeatureKernel;
  } catch {
    // no addon: the TypeScript path below (a few times slower)
  }
  kernel ??= featureKernelJs;
  return kernel;
}

const featureKernelJs: FeatureKernel = (X, Z, B, table, off, scale, T, D, K, phi, offset, w, outScale) => {
  for (let t = 0; t < T; t++) {
    const row = t * D;
    const o = off[t];
    const sc = scale[t];
    if (t === 0) for (let d = 0; d < D; d++) X[d] = sc * table[o + d];
    else for (let d = 0; d < D; d++) X[row + d] = phi * X[row - D + d] + sc * table[o + d];
  }
  // the low-rank part goes on after the whole noise recursion (it must not feed back into it)
  for (let t = 0; t < T; t++) {
    const row = t * D;
    for (let kk = 0; kk < K; kk++) {
      const z = Z[t * K + kk];
      if (z === 0) continue;
      const r = kk * D;
      for (let d = 0; d < D; d++) X[row + d] += z * B[r + d];
    }
  }
  // smooth ReLU: 0 below -w, quadratic within +-w, linear above (C1-continuous)
  const q = outScale / (4 * w);
  for (let i = 0; i < X.length; i++) {
    const x = X[i] + offset;
    X[i] = x >= w ? outScale * x : x <= -w ? 0 : q * (x + w) * (x + w);
  }
};

function videoFeatures(name: string, v: TimedGtVideo, classes: string[], basis: Basis, D: number, seed: number, k: SynthKnobs, run: FeatureKernel): Float32Array {
  const T = snippetCount(v.duration);
  const Z = latentState(name, v, T, classes, basis, seed, k);
  const rng = new Rng(videoSeed(seed, 'noise:' + name));
  // per-element AR(1) noise: each row reads the normal table at a random offset with a random sign
  const phi = k.noiseAr;
  const sd = k.noiseStd * Math.sqrt(1 - phi * phi);
  const off = new Int32Array(T);
  const scale = new Float32Array(T);
  for (let t = 0; t < T; t++) {
    off[t] = rng.int(NOISE_TABLE);
    const sign = rng.uniform() < 0.5 ? -1 : 1;
    scale[t] = t === 0 ? k.noiseStd : sign * sd;
  }
  const X = new Float32Array(T * D);
  run(X, Z, basis.B, basis.table, off, scale, T, D, basis.K, phi, k.offset, k.reluWidth, k.scale);
  return X;
}

/** Snippets of a video: floor(duration * 25 / 16) (16-frame snippets at 25 fps). */
export function snippetCount(duration: number): number {
  return Math.max(0, Math.floor((duration * 25) / 16));
}

// ---- the dataset -------------------------------------------------------------------------------

function loadAnnotations(dir: string): { db: GtDatabase; train: string[]; test: string[] } {
  const gtFile = path.join(dir, GT_FILE);
  if (!fs.existsSync(gtFile)) {
    const hint = fs.existsSync(path.join(dir, 'gt.json'))
      ? ' (ActivityNet-style folders have gt.json; synth needs gt_full.json with durations and fps for every video)'
      : '';
    throw new Error(`synth: ${gtFile} does not exist${hint}`);
  }
  const db = requireTiming(readGroundTruth(gtFile), gtFile);
  const split = (which: Split): string[] => {
    const file = path.join(dir, splitFile(which));
    const names = readSplit(file);
    for (const n of names) if (!db.has(n)) throw new Error(`synth: ${file}: video '${n}' is not in ${gtFile}`);
    return names;
  };
  return { db, train: split('train'), test: split('test') };
}

function copyIfExists(from: string, to: string): void {
  if (!fs.existsSync(from)) return;
  if (fs.statSync(from).isDirectory()) {
    fs.mkdirSync(to, { recursive: true });
    for (const f of fs.readdirSync(from)) copyIfExists(path.join(from, f), path.join(to, f));
  } else writeFileAtomic(to, readRegularFile(from));
}

/** Bytes free to this user on the file system that holds `dir` (or its nearest existing parent); null when unknown. */
function freeBytes(dir: string): number | null {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  try {
    const st = fs.statfsSync(d);
    return st.bavail * st.bsize;
  } catch {
    return null;
  }
}

export async function synthesizeDataset(o: SynthOptions): Promise<SynthSummary> {
  const t0 = process.hrtime.bigint();
  const k: SynthKnobs = { ...SYNTH_DEFAULTS, ...(o.knobs ?? {}) };
  for (const [name, val] of Object.entries(k))
    if (typeof val !== 'number' || !Number.isFinite(val)) throw new Error(`synth: knob '${name}' must be a finite number, received ${val}`);
  for (const name of Object.keys(o.knobs ?? {}))
    if (!Object.hasOwn(SYNTH_DEFAULTS, name)) throw new Error(`synth: unknown knob '${name}'`);
  const D = o.dim ?? 2048;
  const seed = o.seed ?? 0;
  if (!Number.isInteger(D) || D < 1) throw new Error(`synth: dim must be a positive integer, received ${D}`);
  if (o.videos !== undefined && !(Number.isInteger(o.videos) && o.videos >= 1))
    throw new Error(`synth: videos must be a positive integer, received ${o.videos}`);
  if (k.durationScale <= 0) throw new Error('synth: knob durationScale must be positive');
  if (k.classGroupSize < 1 || k.sceneModes < 1 || k.classScenes < 1 || k.scenesMin < 1 || k.scenesMax < k.scenesMin)
    throw new Error('synth: knobs classGroupSize, sceneModes, classScenes, scenesMin must be >= 1 and scenesMax >= scenesMin');
  for (const name of ['classGroupSize', 'sceneModes', 'classScenes', 'scenesMin', 'scenesMax', 'styleDirections', 'latentNoiseDirections', 'maxInstances'] as const)
    if (!Number.isInteger(k[name]) || k[name] < 0) throw new Error(`synth: knob '${name}' must be a non-negative integer`);
  for (const name of ['noiseAr', 'latentNoiseAr', 'smoothing', 'classCorrelation'] as const)
    if (k[name] < 0 || k[name] >= 1) throw new Error(`synth: knob '${name}' must be in [0, 1)`);

  // every bound (lib/util/limits.ts) and the room the features need are checked before anything is written
  const wide = overLimit('featureDim', D);
  if (wide) throw new Error(`synth: dim ${D}: the feature width must be ${wide}`);
  const many = o.videos !== undefined ? overLimit('synthVideos', o.videos) : null;
  if (many) throw new Error(`synth: videos ${o.videos}: must be ${many}`);
  const out = o.out;
  // the annotations' own folder would get invented features over its real ones (and, with
  // videos, shortened split lists)
  if (o.annotations && fs.existsSync(out) && samePath(o.annotations, out))
    throw new Error(`synth: the output folder ${out} is the annotation folder ${o.annotations}; write the dataset into another folder`);
  let db: GtDatabase;
  let train: string[];
  let test: string[];
  let classes: string[];
  let annotations: { db: GtDatabase; train: string[]; test: string[] } | undefined;
  if (o.annotations) {
    annotations = loadAnnotations(o.annotations);
    db = annotations.db;
    train = o.videos ? annotations.train.slice(0, o.videos) : annotations.train;
    test = o.videos ? annotations.test.slice(0, o.videos) : annotations.test;
    // class names in label_id order when present (THUMOS14), else sorted
    const ids = new Map<string, number>();
    for (const v of db.values()) for (const an of v.annotations) if (!ids.has(an.label)) ids.set(an.label, an.labelId ?? -1);
    classes = [...ids.keys()].sort((x, y) => (ids.get(x)! - ids.get(y)!) || x.localeCompare(y));
  } else {
    classes = THUMOS14_CLASSES.slice();
    const n = o.videos ?? 100;
    const nTrain = Math.ceil(n / 2);
    train = Array.from({ length: nTrain }, (_, i) => `video_validation_${String(i + 1).padStart(7, '0')}`);
    test = Array.from({ length: n - nTrain }, (_, i) => `video_test_${String(i + 1).padStart(7, '0')}`);
    db = new Map();
    for (const name of train) db.set(name, inventVideo(name, 'Validation', seed, k));
    for (const name of test) db.set(name, inventVideo(name, 'Test', seed, k));
  }
  let featureBytes = 0;
  for (const name of [...train, ...test]) {
    const T = snippetCount(db.get(name)!.duration);
    const long = overLimit('snippets', T);
    if (long)
      throw new Error(`synth: video ${name} (${db.get(name)!.duration} s${o.annotations ? ` in ${path.join(o.annotations, GT_FILE)}` : `, durationScale ${k.durationScale}`}) would have ${T} snippets; must be ${long}`);
    featureBytes += 128 + T * D * 4;
  }
  const free = freeBytes(out);
  if (free !== null && featureBytes > free)
    throw new Error(`synth: the features would take ${featureBytes} bytes (${train.length + test.length} videos of D = ${D}), more than the ${free} bytes free where ${out} is; nothing was written`);

  fs.mkdirSync(out, { recursive: true });
  if (annotations) {
    for (const f of ['gt_full.json', 'split_train.txt', 'split_test.txt', 'Ambiguous_test.txt', 'point_labels'])
      copyIfExists(path.join(o.annotations!, f), path.join(out, f));
    if (o.videos) {
      // the splits list only the videos that get features, so the folder loads as a dataset
      writeSplit(path.join(out, splitFile('train')), train);
      writeSplit(path.join(out, splitFile('test')), test);
    }
  } else {
    writeGroundTruth(path.join(out, GT_FILE), db);
    writeSplit(path.join(out, splitFile('train')), train);
    writeSplit(path.join(out, splitFile('test')), test);
    // point labels for the training videos, as THUMOS14's point_gaussian.csv
    const rows: (string | number)[][] = [];
    for (const name of train) rows.push(...pointRows(name, db.get(name)!, classes, seed, k));
    fs.mkdirSync(path.join(out, path.dirname(POINT_FILE)), { recursive: true });
    writePointLabels(path.join(out, POINT_FILE), POINT_HEADER, rows);
    const amb: string[] = [];
    for (const name of test) amb.push(...ambiguousRows(name, db.get(name)!, seed, k));
    writeAmbiguous(path.join(out, AMBIGUOUS_FILE), amb);
  }

  const basis = makeBasis(seed, D, classes.length, k);
  const run = o.kernel === 'js' ? featureKernelJs : featureKernel();
  if (o.kernel === 'native' && run === featureKernelJs) throw new Error('synth: the native synth_features op is not available (build the addon)');
  const jobs: [string, string][] = [...train.map((n) => [n, 'train'] as [string, string]), ...test.map((n) => [n, 'test'] as [string, string])];
  let snippets = 0;
  let lastYield = Date.now();
  for (let i = 0; i < jobs.length; i++) {
    const [name, split] = jobs[i];
    const v = db.get(name)!;
    const file = videoFile(path.join(out, 'features', split), name, '.npy', o.annotations ? path.join(o.annotations, splitFile(split as Split)) : 'synth');
    const X = videoFeatures(name, v, classes, basis, D, seed, k, run);
    const T = X.length / D;
    writeNpy(file, X, [T, D]);
    snippets += T;
    o.onProgress?.(i + 1, jobs.length);
    if (Date.now() - lastYield > 200) {
      // let timers and signal handlers run during a long synthesis
      await new Promise((r) => setImmediate(r));
      lastYield = Date.now();
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { out, train: train.length, test: test.length, dim: D, snippets, seconds, classes };
}
