/**
 * video.ts: the timeline picture of one video's detections (lib/plot/timeline.ts) from what
 * `detect` returns: the fused class scores cas_P of the classes it detected (up to three), which
 * the detections were cut from, and the actionness.
 */
import type { Detection, Segment } from '../eval/detection';
import { TimelineInput, writeTimeline } from './timeline';

/**
 * What the picture is drawn from, as plain data (detect's VideoDetections is one): one video's
 * detections and the stage-1 scores over time they were cut from.
 */
export interface VideoPlotInput {
  detections: Detection[];
  /** casP: [T, C] fused class scores; bkg: [T] background score */
  scores: { T: number; casP: Float32Array; bkg: Float32Array };
}

export function plotVideo(fileBase: string, title: string, r: VideoPlotInput, classNames: string[], secondsPerSnippet: number, groundTruth?: Segment[]): string[] {
  return writeTimeline(fileBase, videoTimeline(title, r, classNames, secondsPerSnippet, groundTruth));
}

/** The timeline's input for one video's detections and scores (the picture plotVideo writes). */
export function videoTimeline(title: string, r: VideoPlotInput, classNames: string[], secondsPerSnippet: number, groundTruth?: Segment[], points?: TimelineInput['points']): TimelineInput {
  const { T, casP, bkg } = r.scores;
  const C = classNames.length;
  const shown: number[] = [];
  for (const d of [...r.detections].sort((x, y) => y.score - x.score)) {
    const c = classNames.indexOf(d.label);
    if (c >= 0 && !shown.includes(c)) shown.push(c);
    if (shown.length === 3) break;
  }
  for (const g of groundTruth ?? []) {
    const c = classNames.indexOf(g.label);
    if (c >= 0 && !shown.includes(c) && shown.length < 4) shown.push(c);
  }
  const curves = shown.map((c) => ({ name: classNames[c], values: Float32Array.from({ length: T }, (_, t) => casP[t * C + c]) }));
  curves.push({ name: 'actionness', values: Float32Array.from(bkg, (b) => 1 - b) });
  return { title, secondsPerStep: secondsPerSnippet, curves, detections: r.detections, groundTruth, points };
}
