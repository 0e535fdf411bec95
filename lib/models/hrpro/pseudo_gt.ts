/**
 * pseudo_gt.ts: full (segment-level) pseudo labels for the training videos from a trained model's
 * detections and the point labels (`pstal pseudo-labels`, docs/pseudo-labels.md), and their quality
 * against the true training ground truth. Not stage 1's pseudo labels (pseudo_labels.ts, select_seed).
 *
 * Selection, one video at a time: a detection *holds* a point when their classes agree and the
 * point's time (its frame / fps, seconds) lies in the detection's [start, end]. Each point of a
 * class takes the best-scoring detection holding it and no other point of that class (an
 * "exclusive" detection); a point held only by detections that also hold other points of its class
 * takes the best of those, and a detection chosen by several such points is kept once. So every
 * pseudo instance holds at least one labelled point of its class, and a point is served by at most
 * one instance.
 *
 * Why exclusive first: a point marks one action instance, so a detection spanning two points of its
 * class spans (at least) two instances and fits neither; the soft-NMS output of HR-Pro and TSPNet
 * keeps overlapping detections, so a narrower one around each point is usually there. Why keep a
 * shared detection once rather than hand it to each of its points: two copies of one segment with
 * one label are one instance to every detector's training targets (OpenTAD drops exact
 * duplicates), and a second point served by the copy would be counted as covered while it is not.
 * docs/pseudo-labels.md compares the three rules on the THUMOS14 synthetic run.
 */
import type { Detection, DetectionResults } from '../../formats/results';
import type { GroundTruth } from '../../eval/detection';
import { evaluateDetection, tiou } from '../../eval/detection';

/** What selection needs of a point label (lib/data/dataset.ts PointLabel has it). */
export interface PseudoPoint {
  classIndex: number;
  /** seconds */
  time: number;
}

export interface PseudoInstance extends Detection {
  /** indices (into the video's point list) of the points this instance serves */
  points: number[];
}

/** The rule for a detection that holds several points of its class (see the module comment). */
export type PseudoSharing = 'exclusive' | 'best' | 'match';

/** Whether `d` holds point `p` (same class, the point's time inside the closed segment). */
export function holdsPoint(d: Detection, p: PseudoPoint, classNames: string[]): boolean {
  return d.label === classNames[p.classIndex] && d.segment[0] <= p.time && p.time <= d.segment[1];
}

/**
 * One video's pseudo instances: at most one a point, each holding a point of its class, in
 * decreasing score. `sharing` picks the rule for detections holding several points of their class:
 * 'exclusive' (the default, the module comment's rule), 'best' (each point its best holding
 * detection, a shared one kept once), 'match' (greedy one-to-one: detections by decreasing score,
 * each serves the nearest unserved point it holds; a point may get its second-best detection).
 * Ties in score: the earlier detection in the list wins.
 */
export function selectPseudoInstances(
  detections: Detection[],
  points: PseudoPoint[],
  classNames: string[],
  sharing: PseudoSharing = 'exclusive',
): PseudoInstance[] {
  for (const p of points)
    if (!(p.classIndex >= 0 && p.classIndex < classNames.length)) throw new Error(`selectPseudoInstances: point class ${p.classIndex} is not among the ${classNames.length} classes`);
  // detections by decreasing score, stable
  const order = detections.map((_, i) => i).sort((a, b) => detections[b].score - detections[a].score || a - b);
  const held = order.map((i) => points.map((p, j) => (holdsPoint(detections[i], p, classNames) ? j : -1)).filter((j) => j >= 0));
  const chosen = new Map<number, number[]>(); // rank in `order` -> the points it serves
  const serve = (rank: number, point: number): void => {
    const list = chosen.get(rank);
    if (list) list.push(point);
    else chosen.set(rank, [point]);
  };
  if (sharing === 'match') {
    const served = new Set<number>();
    order.forEach((i, rank) => {
      const d = detections[i];
      const centre = (d.segment[0] + d.segment[1]) / 2;
      let best = -1;
      for (const j of held[rank])
        if (!served.has(j) && (best < 0 || Math.abs(points[j].time - centre) < Math.abs(points[best].time - centre))) best = j;
      if (best >= 0) {
        served.add(best);
        serve(rank, best);
      }
    });
  } else {
    points.forEach((_, j) => {
      let pick = -1;
      if (sharing === 'exclusive') pick = held.findIndex((h) => h.length === 1 && h[0] === j);
      if (pick < 0) pick = held.findIndex((h) => h.includes(j));
      if (pick >= 0) serve(pick, j);
    });
  }
  return [...chosen.keys()]
    .sort((a, b) => a - b)
    .map((rank) => {
      const d = detections[order[rank]];
      return { label: d.label, score: d.score, segment: [d.segment[0], d.segment[1]], points: chosen.get(rank)!.sort((a, b) => a - b) };
    });
}

/** Quality of pseudo labels against the true ground truth, at each tIoU threshold. */
export interface PseudoQuality {
  tiou: number[];
  /** mAP with the pseudo instances as detections scored by their detection score (SPEC §6) */
  map: number[];
  /** fraction of true instances matched by a pseudo instance of their class with tIoU >= t (one-to-one) */
  recall: number[];
  /** fraction of pseudo instances matched to a true instance (the same matching) */
  precision: number[];
  numTrue: number;
  numPseudo: number;
}

/**
 * mAP, recall and precision of `pseudo` against `truth` (the true ground truth of the same videos).
 * Matching for recall and precision, per video and class: pseudo instances by decreasing score,
 * each takes the unmatched true instance with the highest tIoU, when that is >= t (the evaluator's
 * rule, so recall here is the recall at the end of the evaluator's precision/recall curve).
 */
export function pseudoQuality(truth: GroundTruth, pseudo: DetectionResults, thresholds: number[]): PseudoQuality {
  const ev = evaluateDetection(truth, pseudo, { tiou: thresholds });
  let numTrue = 0;
  let numPseudo = 0;
  const matched = thresholds.map(() => 0);
  for (const [video, trueSegs] of Object.entries(truth.videos)) {
    numTrue += trueSegs.length;
    const mine = [...(pseudo[video] ?? [])].map((d, i) => ({ d, i })).sort((a, b) => b.d.score - a.d.score || a.i - b.i);
    numPseudo += mine.length;
    thresholds.forEach((t, k) => {
      const used = new Set<number>();
      for (const { d } of mine) {
        let best = -1;
        let bestIou = -1;
        trueSegs.forEach((g, j) => {
          if (used.has(j) || g.label !== d.label) return;
          const v = tiou(d.segment, g.segment);
          if (v >= t && v > bestIou) {
            best = j;
            bestIou = v;
          }
        });
        if (best >= 0) used.add(best);
      }
      matched[k] += used.size;
    });
  }
  for (const [video, list] of Object.entries(pseudo)) if (!(video in truth.videos)) numPseudo += list.length;
  return {
    tiou: thresholds,
    map: ev.map,
    recall: matched.map((m) => (numTrue ? m / numTrue : 0)),
    precision: matched.map((m) => (numPseudo ? m / numPseudo : 0)),
    numTrue,
    numPseudo,
  };
}

/** The quality as a text table: one row a tIoU threshold, then the mean over the thresholds; percent. */
export function formatPseudoQuality(q: PseudoQuality): string {
  const pct = (x: number): string => (100 * x).toFixed(2);
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
  const rows = q.tiou.map((t, k) => [String(Math.round(t * 1e9) / 1e9), pct(q.map[k]), pct(q.recall[k]), pct(q.precision[k])]);
  rows.push(['mean', pct(mean(q.map)), pct(mean(q.recall)), pct(mean(q.precision))]);
  const head = ['tIoU', 'mAP', 'recall', 'precision'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padStart(w[i])).join(' | ')} |`;
  const sep = `+${w.map((x) => '-'.repeat(x + 2)).join('+')}+`;
  return [sep, line(head), sep, ...rows.map(line), sep].join('\n');
}
