/**
 * proposals.ts: TSPNet's base proposals (SPEC §5, §5.1): one ActivityNet-format file per subset,
 *   {"results": {video: [{"segment": [start, end], "label"?: class, "score"?: number}, ...]}}
 * in seconds. Only `segment` is used; a label, when present, must be a class of the dataset, and a
 * score, when present, a finite number (a file that writes them as strings is refused, not read).
 * Inside TSPNet everything is in snippets: round(seconds x featureFps / snippetFrames, 2) with
 * Python's round (exact decimal value, ties to even), and a segment listed several times (once per
 * class) is one proposal unless `keepDuplicates` (the reference keeps them).
 *
 * The files come from a user (any base locator) or from an HR-Pro run folder (buildFromHrPro):
 *   stage 1: the best stage-1 checkpoint's raw multi-threshold candidates (before soft-NMS and the
 *            ambiguous filter) over the training and test videos;
 *   stage 2: those candidates through the best stage-2 checkpoint (original and refined proposals,
 *            soft-NMS, no ambiguous filter), clipped to the video.
 */
import * as fs from 'fs';
import type { OnProgress } from '../../util/progress';
import type { VideoRecord } from '../../data';
import type { Proposal } from '../../postprocess';
import { loadHrPro } from '../hrpro/detect';
import { testStage1 } from '../hrpro/evaluate';
import { stage2Detect } from '../hrpro/inference';
import { testProposals } from '../hrpro/proposals';
import { packByClass } from '../../formats/proposals';
import { groupByClass } from '../hrpro/ranking';
import type { Device } from '../../runtime/backend';
import { readJson, emptyRecord, isObject, shown } from '../../formats/text';
import { writeResults } from '../../formats/results';

export interface BaseProposal {
  segment: [number, number];
  label?: string;
  score?: number;
}

/** A video's proposals inside TSPNet, in snippets: float64 for labels, float32 (the RoI's) for the network. */
export interface VideoProposals {
  /** [M, 2] rounded snippet values, as the reference's float64 numpy array */
  snippets: Float64Array;
  /** the same values as float32, as its torch tensor */
  snippets32: Float32Array;
}

/**
 * Python's round(x, digits) for a double: the exact decimal value rounded, ties to even, then the
 * nearest double (Math.round(x * 100) / 100 differs on values whose product rounds across a half).
 */
export function pyRound(x: number, digits: number): number {
  if (!Number.isFinite(x)) return x;
  const [intPart, frac] = Math.abs(x).toFixed(100).split('.'); // exact: a double's expansion is finite
  let n = BigInt(intPart + frac.slice(0, digits));
  const rest = frac.slice(digits).replace(/0+$/, '');
  if (rest > '5' || (rest === '5' && n % 2n === 1n)) n += 1n;
  const str = n.toString().padStart(digits + 1, '0');
  const v = Number(`${str.slice(0, str.length - digits)}.${str.slice(str.length - digits)}`);
  return x < 0 ? -v : v;
}

/**
 * One base proposal checked (`where` names the file and the entry in the error): an object whose
 * `segment` is [start, end] seconds, two finite numbers, start <= end, start >= 0 and, when `end` is
 * given, end <= `end` (each within `tol`); `label`, when present, one of `known`; `score`, when
 * present, a finite number. Returns the proposal as given.
 */
export function checkBaseProposal(q: unknown, where: string, known: ReadonlySet<string>, bounds: { end?: number; tol?: number } = {}): BaseProposal {
  if (!isObject(q)) throw new Error(`${where}: expected a proposal {"segment": [start, end]}, received ${shown(q)}`);
  const seg = q.segment;
  if (!Array.isArray(seg) || seg.length !== 2 || !seg.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw new Error(`${where}: segment must be [start, end] in seconds, received ${JSON.stringify(seg)}`);
  if (seg[1] < seg[0]) throw new Error(`${where}: segment [${seg[0]}, ${seg[1]}] is reversed (ends before it starts)`);
  const tol = bounds.tol ?? 0;
  if (seg[0] < -tol || (bounds.end !== undefined && seg[1] > bounds.end + tol))
    throw new Error(`${where}: segment [${seg[0]}, ${seg[1]}] lies outside the video [0, ${bounds.end === undefined ? 'its end' : bounds.end.toFixed(2)}] s`);
  if (q.label !== undefined && !(typeof q.label === 'string' && known.has(q.label)))
    throw new Error(`${where}: label ${typeof q.label === 'string' ? `'${q.label}'` : shown(q.label)} is not a class of the dataset`);
  if (q.score !== undefined && !(typeof q.score === 'number' && Number.isFinite(q.score)))
    throw new Error(`${where}: score must be a finite number, received ${shown(q.score)}`);
  return q as unknown as BaseProposal;
}

/** Reads and checks a proposals file against a split's videos; every problem names the file. */
export function readBaseProposals(
  file: string,
  videos: Pick<VideoRecord, 'name' | 'T' | 'duration'>[],
  classNames: string[],
  timeBase: { featureFps: number; snippetFrames: number },
): Map<string, BaseProposal[]> {
  const p = readJson(file, 'base proposals');
  if (!isObject(p) || !isObject(p.results))
    throw new Error(`${file}: expected {"results": {video: [{"segment": [start, end]}, ...]}} (ActivityNet format, seconds)`);
  const results = p.results;
  // own keys only: a video named "constructor" or "__proto__" is not found on Object.prototype
  const missing = videos.filter((v) => !Object.hasOwn(results, v.name)).map((v) => v.name);
  if (missing.length)
    throw new Error(`${file}: no proposals for ${missing.length} video(s) of the split (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}); every video needs at least one`);
  const known = new Set(classNames);
  const sps = timeBase.snippetFrames / timeBase.featureFps;
  const out = new Map<string, BaseProposal[]>();
  for (const v of videos) {
    const list = results[v.name];
    if (!Array.isArray(list)) throw new Error(`${file}: results["${v.name}"] must be a list of proposals`);
    if (list.length === 0) throw new Error(`${file}: results["${v.name}"] is an empty proposal list; every video needs at least one proposal`);
    // a base locator's last proposal may end on the last snippet's end, past the annotated duration
    const end = Math.max(v.duration || 0, v.T * sps);
    const tol = 1e-6 * Math.max(1, end);
    list.forEach((q, i) => checkBaseProposal(q, `${file}: results["${v.name}"][${i}]`, known, { end, tol }));
    out.set(v.name, list as BaseProposal[]);
  }
  return out;
}

/** A video's proposals in snippets (SPEC §5.1 units), deduplicated unless `keepDuplicates`. */
export function toSnippets(list: readonly BaseProposal[], snippetsPerSecond: number, keepDuplicates: boolean): VideoProposals {
  const vals: number[] = [];
  const seen = new Set<string>();
  for (const q of list) {
    const s = pyRound(q.segment[0] * snippetsPerSecond, 2);
    const e = pyRound(q.segment[1] * snippetsPerSecond, 2);
    if (!keepDuplicates) {
      const k = `${s},${e}`;
      if (seen.has(k)) continue;
      seen.add(k);
    }
    vals.push(s, e);
  }
  return { snippets: Float64Array.from(vals), snippets32: Float32Array.from(vals) };
}

export function loadProposalsFor(
  file: string,
  videos: Pick<VideoRecord, 'name' | 'T' | 'duration'>[],
  classNames: string[],
  cfg: { featureFps: number; snippetFrames: number; keepDuplicates: boolean },
): Map<string, VideoProposals> {
  const raw = readBaseProposals(file, videos, classNames, cfg);
  const sps = cfg.featureFps / cfg.snippetFrames;
  return new Map([...raw].map(([k, list]) => [k, toSnippets(list, sps, cfg.keepDuplicates)]));
}

export function writeBaseProposals(file: string, results: Record<string, BaseProposal[]>, details: string): void {
  writeResults(file, results, details, { units: 'seconds' });
}

export type BaseStage = 1 | 2;

/** Candidates of one video from a loaded HR-Pro model, in seconds, clipped to [0, end]. */
function toBase(props: Proposal[], classNames: string[], end: number): BaseProposal[] {
  const out: BaseProposal[] = [];
  for (const p of props) {
    const s = Math.max(0, p.start);
    const e = Math.min(end, p.end);
    if (!(e > s)) continue;
    out.push({ segment: [s, e], label: classNames[p.classIndex], score: p.score });
  }
  return out;
}

/**
 * Base proposals of videos from an HR-Pro run folder (stage 1: raw candidates; stage 2: the
 * stage-2 detections before the ambiguous filter). Refuses a run of other classes or feature width.
 */
export function hrproProposals(
  run: string,
  stage: BaseStage,
  videos: VideoRecord[],
  classNames: string[],
  options: { device?: Device; onVideo?: OnProgress } = {},
): Record<string, BaseProposal[]> {
  const base = loadHrPro(run, { device: options.device });
  try {
    if (JSON.stringify(base.classNames) !== JSON.stringify(classNames))
      throw new Error(`${run}: the HR-Pro run's classes (${base.classNames.length}) differ from the dataset's (${classNames.length})`);
    if (videos.length && videos[0].D !== base.featureDim) throw new Error(`${run}: the HR-Pro run expects D = ${base.featureDim}, the data has D = ${videos[0].D}`);
    if (stage === 2 && !base.stage2) throw new Error(`${run}: no stage-2 checkpoint; use --base-stage 1 or train stage 2 first`);
    const pass = testStage1(base.stage1, videos, classNames, base.cfg1, { evaluate: false, onVideo: options.onVideo });
    const out = emptyRecord<BaseProposal[]>();
    for (const v of videos) {
      const end = Math.max(v.duration || 0, v.T * base.cfg1.secondsPerSnippet);
      const cands = pass.candidates.get(v.name)!;
      if (stage === 1) out[v.name] = toBase(cands, classNames, end);
      else {
        const pp = testProposals(packByClass(groupByClass(cands, classNames)), classNames, 1 / base.cfg2.secondsPerSnippet);
        out[v.name] = toBase(stage2Detect(base.stage2!, v, pp, classNames, base.cfg2).detections.map((d) => ({ classIndex: classNames.indexOf(d.label), score: d.score, start: d.segment[0], end: d.segment[1] })), classNames, end);
      }
    }
    return out;
  } finally {
    base.dispose();
  }
}
