/**
 * timeline.ts: one video's detections as a picture, like the paper's qualitative figure: the class
 * scores and the actionness (1 - background) over time as curves, the detections as bars (opacity by
 * score), and the ground truth as bars when it is known. SVG is written by hand (no dependency);
 * PNG goes through @resvg/resvg-js, an optional dependency, when it is installed.
 */
import { writeFileAtomic } from '../util/fs';
import type { Detection, Segment } from '../eval/detection';

export interface TimelineInput {
  title: string;
  /** seconds per score row */
  secondsPerStep: number;
  /** curves to draw, each over the same time axis (values in [0, 1]) */
  curves: { name: string; values: ArrayLike<number> }[];
  detections: Detection[];
  groundTruth?: Segment[];
  /** point labels (a class and a time in seconds), drawn as markers under the ground truth */
  points?: { label: string; time: number }[];
  /** at most this many detections are drawn (the best-scoring ones) */
  maxDetections?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function timelineSvg(p: TimelineInput): string {
  const W = 960;
  const left = 70;
  const right = 20;
  const plotW = W - left - right;
  const T = Math.max(1, ...p.curves.map((c) => c.values.length));
  const duration = Math.max(T * p.secondsPerStep, ...p.detections.map((d) => d.segment[1]), ...(p.groundTruth ?? []).map((g) => g.segment[1]), ...(p.points ?? []).map((q) => q.time));
  const x = (sec: number): number => left + (Math.max(0, Math.min(duration, sec)) / duration) * plotW;
  const dets = [...p.detections].sort((a, b) => b.score - a.score).slice(0, p.maxDetections ?? 15);
  const labels = [...new Set([...(p.groundTruth ?? []).map((g) => g.label), ...(p.points ?? []).map((q) => q.label), ...p.curves.map((c) => c.name), ...dets.map((d) => d.label)])];
  const color = (label: string): string => (label === 'actionness' ? '#444' : PALETTE[labels.indexOf(label) % PALETTE.length]);
  const parts: string[] = [];
  let y = 30;
  parts.push(`<text x="${left}" y="18" font-size="14" font-family="sans-serif">${esc(p.title)}</text>`);

  // curves
  const curveH = 150;
  parts.push(`<rect x="${left}" y="${y}" width="${plotW}" height="${curveH}" fill="none" stroke="#ccc"/>`);
  for (const v of [0, 0.5, 1]) parts.push(`<text x="${left - 8}" y="${y + curveH * (1 - v) + 4}" font-size="10" text-anchor="end" font-family="sans-serif">${v}</text>`);
  for (const c of p.curves) {
    const pts: string[] = [];
    for (let t = 0; t < c.values.length; t++) pts.push(`${x((t + 0.5) * p.secondsPerStep).toFixed(1)},${(y + curveH * (1 - Math.max(0, Math.min(1, c.values[t])))).toFixed(1)}`);
    const dash = c.name === 'actionness' ? ' stroke-dasharray="4 3"' : '';
    parts.push(`<polyline fill="none" stroke="${color(c.name)}" stroke-width="1.5"${dash} points="${pts.join(' ')}"/>`);
  }
  parts.push(`<text x="${left - 60}" y="${y + curveH / 2}" font-size="11" font-family="sans-serif">scores</text>`);
  y += curveH + 14;

  // detections, best first, stacked in rows so overlapping bars stay visible
  const maxScore = Math.max(1e-9, ...dets.map((d) => d.score));
  const rowH = 9;
  const rows: [number, number][][] = [];
  const placed = dets.map((d) => {
    let r = rows.findIndex((row) => row.every(([s, e]) => d.segment[0] >= e || d.segment[1] <= s));
    if (r < 0) r = rows.push([]) - 1;
    rows[r].push([d.segment[0], d.segment[1]]);
    return { d, r };
  });
  const detH = Math.max(1, rows.length) * rowH;
  parts.push(`<text x="${left - 60}" y="${y + 10}" font-size="11" font-family="sans-serif">detections</text>`);
  for (const { d, r } of placed) {
    const op = (0.25 + 0.75 * Math.max(0, d.score) / maxScore).toFixed(2);
    parts.push(
      `<rect x="${x(d.segment[0]).toFixed(1)}" y="${y + r * rowH}" width="${Math.max(1, x(d.segment[1]) - x(d.segment[0])).toFixed(1)}" height="${rowH - 2}" fill="${color(d.label)}" fill-opacity="${op}"><title>${esc(d.label)} ${d.segment[0].toFixed(1)}-${d.segment[1].toFixed(1)} s, score ${d.score.toFixed(3)}</title></rect>`,
    );
  }
  y += detH + 12;

  if (p.groundTruth) {
    parts.push(`<text x="${left - 60}" y="${y + 10}" font-size="11" font-family="sans-serif">ground truth</text>`);
    for (const g of p.groundTruth)
      parts.push(`<rect x="${x(g.segment[0]).toFixed(1)}" y="${y}" width="${Math.max(1, x(g.segment[1]) - x(g.segment[0])).toFixed(1)}" height="12" fill="${color(g.label)}"><title>${esc(g.label)} ${g.segment[0].toFixed(1)}-${g.segment[1].toFixed(1)} s</title></rect>`);
    y += 24;
  }

  if (p.points?.length) {
    parts.push(`<text x="${left - 60}" y="${y + 10}" font-size="11" font-family="sans-serif">points</text>`);
    for (const q of p.points) {
      const px = x(q.time);
      parts.push(`<path d="M${px.toFixed(1)},${y} l-5,10 h10 z" fill="${color(q.label)}"><title>point: ${esc(q.label)} at ${q.time.toFixed(2)} s</title></path>`);
    }
    y += 20;
  }

  // time axis
  const step = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600].find((s) => duration / s <= 12) ?? 1200;
  for (let s = 0; s <= duration + 1e-9; s += step) {
    parts.push(`<line x1="${x(s)}" y1="${y}" x2="${x(s)}" y2="${y + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x(s)}" y="${y + 15}" font-size="10" text-anchor="middle" font-family="sans-serif">${s}s</text>`);
  }
  y += 26;
  // legend
  let lx = left;
  for (const l of labels) {
    parts.push(`<rect x="${lx}" y="${y - 9}" width="10" height="10" fill="${color(l)}"/><text x="${lx + 14}" y="${y}" font-size="11" font-family="sans-serif">${esc(l)}</text>`);
    lx += 24 + 7 * l.length;
  }
  y += 12;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

/** Writes FILE.svg and, when @resvg/resvg-js is installed, FILE.png. Returns the paths written. */
export function writeTimeline(fileBase: string, p: TimelineInput): string[] {
  const svg = timelineSvg(p);
  const written = [`${fileBase}.svg`];
  writeFileAtomic(written[0], svg);
  let Resvg: (new (svg: string, o?: object) => { render(): { asPng(): Buffer } }) | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    Resvg = require('@resvg/resvg-js').Resvg;
  } catch {
    Resvg = undefined;
  }
  if (Resvg) {
    const png = new Resvg(svg, { background: 'white', font: { loadSystemFonts: true } }).render().asPng();
    writeFileAtomic(`${fileBase}.png`, png);
    written.push(`${fileBase}.png`);
  }
  return written;
}
