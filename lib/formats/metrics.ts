/**
 * metrics.ts: RUN/stage{1,2}_metrics.jsonl and RUN/tspnet/metrics.jsonl, one JSON object a line
 * per test during training (iteration or epoch, losses, mAP per tIoU, best so far). The file is
 * rewritten whole and atomically after each test, so a kill never leaves half a line; a line that
 * does not parse (a file cut by an older version's append) is reported to the caller.
 */
import * as fs from 'fs';
import { readText } from './text';
import { writeFileAtomic } from '../util/fs';

export type MetricsLine = Record<string, unknown>;

export interface MetricsFile {
  /** the lines that parse, with their text as written */
  lines: { text: string; value: MetricsLine }[];
  /** 1-based numbers of the lines that do not parse */
  badLines: number[];
}

/** Reads a metrics file; a missing file is an empty one. */
export function readMetrics(file: string): MetricsFile {
  const out: MetricsFile = { lines: [], badLines: [] };
  if (!fs.existsSync(file)) return out;
  readText(file, 'metrics file').split('\n').forEach((text, i) => {
    if (!text.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      out.badLines.push(i + 1);
      return;
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) out.lines.push({ text, value: value as MetricsLine });
    else out.badLines.push(i + 1);
  });
  return out;
}

/** Writes the metrics lines (JSON text, one a line) atomically. */
export function writeMetrics(file: string, lines: readonly string[]): void {
  writeFileAtomic(file, lines.map((l) => l + '\n').join(''));
}
