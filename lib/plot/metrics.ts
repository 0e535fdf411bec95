/**
 * metrics.ts: a run's learning curves as RUN/metrics.svg, redrawn after every test: for each stage
 * (HR-Pro's two, or TSPNet) that has a metrics file, the test's average mAP over the run's tIoUs
 * (its config file's; THUMOS14's 0.1:0.7 for a run without one) and mAP@0.5 over iterations or
 * epochs, with the training loss scaled into the same panel. SVG by hand, no dependency.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_TIOU } from '../eval/detection';
import { readRegularFile, writeFileAtomic } from '../util/fs';

interface Series {
  name: string;
  color: string;
  points: [number, number][];
  dashed?: boolean;
}

function panel(x0: number, y0: number, w: number, h: number, title: string, xLabel: string, series: Series[], yMax: number): string {
  const all = series.flatMap((s) => s.points);
  if (!all.length) return '';
  const xMax = Math.max(...all.map((p) => p[0]), 1);
  const X = (v: number): number => x0 + (v / xMax) * w;
  const Y = (v: number): number => y0 + h - (Math.max(0, Math.min(yMax, v)) / yMax) * h;
  const out: string[] = [`<text x="${x0}" y="${y0 - 8}" font-size="13" font-family="sans-serif">${title}</text>`];
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#ccc"/>`);
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/>`);
    out.push(`<text x="${x0 - 6}" y="${Y(v) + 4}" font-size="10" text-anchor="end" font-family="sans-serif">${v.toFixed(0)}</text>`);
  }
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 28}" font-size="11" text-anchor="middle" font-family="sans-serif">${xLabel}</text>`);
  out.push(`<text x="${x0}" y="${y0 + h + 14}" font-size="10" font-family="sans-serif">0</text><text x="${x0 + w}" y="${y0 + h + 14}" font-size="10" text-anchor="end" font-family="sans-serif">${xMax}</text>`);
  let ly = y0 + 14;
  for (const s of series) {
    if (!s.points.length) continue;
    const pts = s.points.map(([a, b]) => `${X(a).toFixed(1)},${Y(b).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="4 3"' : ''} points="${pts}"/>`);
    out.push(`<line x1="${x0 + w - 150}" x2="${x0 + w - 130}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${x0 + w - 125}" y="${ly}" font-size="10" font-family="sans-serif">${s.name}</text>`);
    ly += 14;
  }
  return out.join('');
}

function readLines(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  return readRegularFile(file).toString('utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The tIoUs a stage was evaluated at: RUN/<file>'s `<section>.tiou`. */
function runTious(run: string, file: string, section: string): number[] {
  try {
    const c = JSON.parse(readRegularFile(path.join(run, file)).toString('utf8')) as Record<string, { tiou?: unknown }>;
    const t = c[section]?.tiou;
    if (Array.isArray(t) && t.length && t.every((x) => typeof x === 'number')) return t as number[];
  } catch {
    // no config (a run folder from elsewhere): THUMOS14's, the evaluator's default
  }
  return DEFAULT_TIOU;
}

/** '0.1:0.7' from [0.1, ..., 0.7]. */
function tiouRange(t: number[]): string {
  const f = (x: number): string => String(Math.round(x * 1000) / 1000);
  return t.length > 1 ? `${f(t[0])}:${f(t[t.length - 1])}` : f(t[0]);
}

type Line = { test?: { map: number[]; average: number }; loss: number } & Record<string, unknown>;

/** Draws RUN/metrics.svg from RUN/stage{1,2}_metrics.jsonl or RUN/tspnet_metrics.jsonl; returns its path, or null without metrics. */
export function writeMetricsPlot(run: string): string | null {
  const svg = metricsSvg(run);
  if (svg === null) return null;
  const file = path.join(run, 'metrics.svg');
  writeFileAtomic(file, svg);
  return file;
}

/** The learning curves of RUN/stage{1,2}_metrics.jsonl and RUN/tspnet_metrics.jsonl as SVG text, or null without metrics. */
export function metricsSvg(run: string): string | null {
  const stages = [
    { file: 'stage1_metrics.jsonl', key: 'iteration', title: 'HR-Pro stage 1: test mAP (%)', xLabel: 'iteration', config: ['config.json', 'stage1'] },
    { file: 'stage2_metrics.jsonl', key: 'epoch', title: 'HR-Pro stage 2: test mAP (%)', xLabel: 'epoch', config: ['stage2_config.json', 'stage2'] },
    { file: 'tspnet_metrics.jsonl', key: 'iteration', title: 'TSPNet: test mAP (%)', xLabel: 'iteration', config: ['tspnet_config.json', 'tspnet'] },
  ].map((s) => ({ ...s, lines: readLines(path.join(run, s.file)) as Line[], tiou: runTious(run, s.config[0], s.config[1]) })).filter((s) => s.lines.length);
  if (!stages.length) return null;
  const W = 460;
  const H = 220;
  const parts = stages.map((s, i) => {
    const withTest = s.lines.filter((l) => l.test);
    const maxLoss = Math.max(1e-9, ...s.lines.map((l) => l.loss));
    const at05 = s.tiou.findIndex((t) => Math.abs(t - 0.5) < 1e-9);
    const series: Series[] = [
      { name: `avg mAP(${tiouRange(s.tiou)})`, color: '#1f77b4', points: withTest.map((l) => [l[s.key] as number, 100 * l.test!.average]) },
      { name: 'mAP@0.5', color: '#2ca02c', points: at05 < 0 ? [] : withTest.filter((l) => l.test!.map.length > at05).map((l) => [l[s.key] as number, 100 * l.test!.map[at05]]) },
      { name: `loss (max ${maxLoss.toFixed(2)} = top)`, color: '#999', dashed: true, points: s.lines.map((l) => [l[s.key] as number, (100 * l.loss) / maxLoss]) },
    ];
    return panel(60 + i * (W + 70), 40, W, H, s.title, s.xLabel, series, 100);
  });
  const width = 60 + stages.length * (W + 70);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H + 90}" viewBox="0 0 ${width} ${H + 90}"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}
