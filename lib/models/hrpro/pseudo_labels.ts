/**
 * pseudo_labels.ts: select_seed (SPEC §2 "Pseudo labels"): from the background score and the
 * point labels of one video, the background seeds and the action seeds grown from each point.
 *
 * Points sit at snippet indices p_1 < ... < p_n (rows of the multi-hot point matrix). Left of p_1
 * and right of p_n, every snippet up to (from) the last (first) confident background snippet is
 * background, or up to and including (from) argmax(bkg) when there is none; between two
 * non-adjacent points, the span between the first and last confident background snippets when
 * there are at least two, else argmax(bkg) alone. Action seeds then grow outwards from each
 * point over snippets with bkg <= actThreshold that are not background, stopping at the first
 * that fails, with the point's (multi-hot) class row.
 */

export interface SeedOptions {
  actThreshold: number; // 0.1
  bkgThreshold: number; // 0.95
}

export const DEFAULT_SEED_OPTIONS: SeedOptions = { actThreshold: 0.1, bkgThreshold: 0.95 };

export interface Seeds {
  /** [T, C] multi-hot: points plus grown action snippets */
  act: Float32Array;
  /** [T] 1 for background seeds */
  bkg: Float32Array;
}

/**
 * @param bkgScore [T] background probability per snippet
 * @param points [T, C] multi-hot point labels (C = number of action classes)
 */
export function selectSeed(bkgScore: ArrayLike<number>, points: Float32Array, C: number, o: SeedOptions = DEFAULT_SEED_OPTIONS): Seeds {
  const T = bkgScore.length;
  if (points.length !== T * C) throw new Error(`selectSeed: points has ${points.length} values, expected T*C = ${T}*${C}`);
  const act = points.slice();
  const bkg = new Float32Array(T);
  const pts: number[] = [];
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++)
      if (points[t * C + c] > 0) {
        pts.push(t);
        break;
      }
  }
  if (pts.length === 0) return { act, bkg };

  const argmax = (s: number, e: number): number => {
    let best = s;
    for (let t = s + 1; t < e; t++) if (bkgScore[t] > bkgScore[best]) best = t;
    return best;
  };
  const grow = (from: number, to: number, step: number, src: number): void => {
    for (let j = from; step > 0 ? j < to : j > to; j += step) {
      if (bkgScore[j] <= o.actThreshold && bkg[j] < 1) act.set(points.subarray(src * C, src * C + C), j * C);
      else break;
    }
  };
  const first = pts[0];
  const last = pts[pts.length - 1];

  // left of the first point: [0, first)
  if (first > 0) {
    let lastMarked = -1;
    for (let t = 0; t < first; t++) if (bkgScore[t] >= o.bkgThreshold) lastMarked = t;
    const end = lastMarked >= 0 ? lastMarked : argmax(0, first);
    for (let t = 0; t <= end; t++) bkg[t] = 1;
    grow(first - 1, -1, -1, first);
  }
  // right of the last point: (last, T)
  if (last < T - 1) {
    let firstMarked = -1;
    for (let t = last + 1; t < T; t++)
      if (bkgScore[t] >= o.bkgThreshold) {
        firstMarked = t;
        break;
      }
    const start = firstMarked >= 0 ? firstMarked : argmax(last + 1, T);
    for (let t = start; t < T; t++) bkg[t] = 1;
    grow(last + 1, T, 1, last);
  }
  // between consecutive points
  for (let i = 0; i + 1 < pts.length; i++) {
    const a = pts[i];
    const b = pts[i + 1];
    if (b - a <= 1) continue;
    const marked: number[] = [];
    for (let t = a + 1; t < b; t++) if (bkgScore[t] >= o.bkgThreshold) marked.push(t);
    if (marked.length >= 2) for (let t = marked[0]; t <= marked[marked.length - 1]; t++) bkg[t] = 1;
    else bkg[argmax(a + 1, b)] = 1;
    grow(a + 1, b, 1, a);
    grow(b - 1, a, -1, b);
  }
  return { act, bkg };
}

/** The snippet rows where a [T] (or column c of a [T, C]) 0/1 sequence is 1. */
export function rowsWhere(seq: Float32Array, T: number, C = 1, c = 0): number[] {
  const rows: number[] = [];
  for (let t = 0; t < T; t++) if (seq[t * C + c] > 0) rows.push(t);
  return rows;
}

/**
 * The rows the contrastive loss uses for a seed sequence, as the reference's run extraction
 * (utils.extract_region_feat) finds them from the sequence's changes (SPEC §2, contrastive loss):
 * all its 1-rows, except that a run reaching the end of the video loses its last row T - 1 (so a
 * one-snippet run there is skipped), and a sequence with no change at all (all 0 or all 1) gives
 * none.
 */
export function regionRows(seq: Float32Array, T: number, C = 1, c = 0): number[] {
  const rows = rowsWhere(seq, T, C, c);
  if (rows.length === 0 || rows.length === T) return [];
  if (rows[rows.length - 1] === T - 1) rows.pop();
  return rows;
}
