/**
 * ranking.ts: reliability ranking between the stages (SPEC §3). From the stage-1 candidates of a
 * training video and its points:
 *   RP  for each point, the best-scoring candidate of its class that contains it and lies strictly
 *       between the neighbouring points (of any class); failing that, the best one containing it;
 *       only positive scores qualify; null when none does
 *   PP  every candidate
 *   NP  random sub-spans of the background-seed runs, 0.5 x |PP| of them, with a bounded number
 *       of draws (the reference loops forever when no run can yield a span, e.g. only 2-snippet runs)
 * PP and RP are in seconds ([start, end, score]); NP in snippets, as the reference writes them.
 */
import { Rng } from '../../util/rng';
import type { Proposal } from '../../postprocess';
import type { Span, RankedProposals } from '../../formats/proposals';
import { emptyRecord } from '../../formats/text';

export type { Span, RankedProposals } from '../../formats/proposals';

export interface RankingPoint {
  /** seconds */
  time: number;
  classIndex: number;
}

/** Candidates grouped by class name, in candidate order. */
export function groupByClass(candidates: Proposal[], classNames: string[]): Record<string, Span[]> {
  const pp = emptyRecord<Span[]>();
  for (const p of candidates) (pp[classNames[p.classIndex]] ??= []).push([p.start, p.end, p.score]);
  return pp;
}

/** RP: one candidate per point (SPEC §3), or null. */
export function matchPoints(pp: Record<string, Span[]>, points: RankingPoint[], classNames: string[]): Record<string, (Span | null)[]> {
  const sorted = points.map((p, i) => ({ ...p, i })).sort((a, b) => a.time - b.time || a.i - b.i);
  const times = [-1, ...sorted.map((p) => p.time), 1e5];
  const rp = emptyRecord<(Span | null)[]>();
  sorted.forEach((pt, i) => {
    const label = classNames[pt.classIndex];
    const props = pp[label] ?? [];
    const best = (bounded: boolean): Span | null => {
      let match: Span | null = null;
      let maxScore = 0;
      for (const p of props) {
        if (!(p[0] <= pt.time && p[1] >= pt.time)) continue;
        if (bounded && !(p[0] > times[i] && p[1] < times[i + 2])) continue;
        if (p[2] > maxScore) {
          match = p;
          maxScore = p[2];
        }
      }
      return match;
    };
    (rp[label] ??= []).push(best(true) ?? best(false));
  });
  return rp;
}

/** Runs of consecutive 1s of a [T] seed sequence, as [first, last] snippet pairs. */
export function seedRuns(seed: ArrayLike<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (let t = 0; t < seed.length; t++) {
    if (!(seed[t] > 0)) continue;
    if (runs.length && runs[runs.length - 1][1] === t - 1) runs[runs.length - 1][1] = t;
    else runs.push([t, t]);
  }
  return runs;
}

/**
 * NP: `count` random sub-spans of the background runs. A one-snippet run gives [s, s + 1, -1];
 * a longer run [first, last] gives start = floor(U(first, last)), end = floor(U(start, last)),
 * kept when start < end, scored -(end - start) / (last - first). At most maxDraws draws.
 */
export function sampleNegatives(runs: [number, number][], count: number, rng: Rng, maxDraws = 100 * count + 1000): Span[] {
  const np: Span[] = [];
  if (!runs.length) return np;
  for (let draw = 0; draw < maxDraws && np.length < count; draw++) {
    const [first, last] = runs[rng.int(runs.length)];
    if (first === last) {
      np.push([first, first + 1, -1]);
      continue;
    }
    const start = Math.floor(rng.range(first, last));
    const end = Math.floor(rng.range(start, last));
    if (start < end) np.push([start, end, -(end - start) / (last - first)]);
  }
  return np;
}

/** All three sets for one training video. bkgSeed: select_seed's background seeds [T]. */
export function rankVideo(
  candidates: Proposal[],
  points: RankingPoint[],
  bkgSeed: Float32Array,
  classNames: string[],
  rng: Rng,
): RankedProposals {
  const PP = groupByClass(candidates, classNames);
  const RP = matchPoints(PP, points, classNames);
  const NP = sampleNegatives(seedRuns(bkgSeed), Math.floor(0.5 * candidates.length), rng);
  return { PP, RP, NP };
}
