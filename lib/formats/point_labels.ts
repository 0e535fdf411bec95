/**
 * point_labels.ts: point_labels/point_gaussian.csv (SPEC §1), one labelled frame per action
 * instance: columns found by name in the header; `class`, `video_id` and `point` are needed
 * (THUMOS14's also has class_index, GTEA/BEOID/ActivityNet's do not; it is not used: the class index
 * comes from the class name and the config's class list), `start_frame`/`stop_frame` are read where
 * present. Double-quoted fields may hold commas and "" for a quote.
 */
import { readText, FormatError } from './text';
import { writeFileAtomic } from '../util/fs';
import * as path from 'path';

export const POINT_FILE = path.join('point_labels', 'point_gaussian.csv');

/** The header pstal writes. */
export const POINT_HEADER = ['class', 'class_index', 'start_frame', 'stop_frame', 'video_id', 'point'];

export interface PointRow {
  /** 1-based line number in the csv. */
  line: number;
  video: string;
  label: string;
  /** a frame index at the video's own fps */
  frame: number;
  /** the instance's start and stop frames, where the csv has `start_frame`/`stop_frame` (THUMOS14, GTEA, BEOID, ActivityNet all do) */
  startFrame?: number;
  stopFrame?: number;
  /** the row's fields as written, in the header's order */
  fields: string[];
}

export interface PointLabelsFile {
  header: string[];
  rows: PointRow[];
}

/** One csv line into fields. */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field.length === 0) quoted = true;
    else if (ch === ',') {
      out.push(field);
      field = '';
    } else field += ch;
  }
  out.push(field);
  return out;
}

/** A field as csv writes it (quoted when it holds a quote, a comma or a line break). */
export const csvField = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** Reads and checks the point csv; every error names the file and the line. */
export function readPointLabels(file: string): PointLabelsFile {
  const lines = readText(file, 'point-label file').split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? '').map((s) => s.trim());
  if (new Set(header).size !== header.length) throw new FormatError(`${file}:1: the header names a column twice (header: ${header.join(',')})`);
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new FormatError(`${file}: missing column "${name}" (header: ${header.join(',')})`);
    return i;
  };
  const iClass = col('class');
  const iVideo = col('video_id');
  const iPoint = col('point');
  const iStart = header.indexOf('start_frame');
  const iStop = header.indexOf('stop_frame');
  const rows: PointRow[] = [];
  for (let n = 1; n < lines.length; n++) {
    if (lines[n].trim().length === 0) continue;
    const f = splitCsvLine(lines[n]);
    const at = `${file}:${n + 1}`;
    if (f.length !== header.length) throw new FormatError(`${at}: expected ${header.length} fields, found ${f.length}`);
    if (f.every((x, i) => x.trim() === header[i])) throw new FormatError(`${at}: the header line again (two files concatenated?)`);
    if (f[iVideo].trim() === '') throw new FormatError(`${at}: column "video_id" is empty`);
    if (f[iClass].trim() === '') throw new FormatError(`${at}: column "class" is empty`);
    let startFrame: number | undefined;
    let stopFrame: number | undefined;
    if (iStart >= 0 && iStop >= 0 && f[iStart].trim() !== '' && f[iStop].trim() !== '') {
      const a = Number(f[iStart]);
      const b = Number(f[iStop]);
      if (!Number.isFinite(a) || !Number.isFinite(b) || a < 0 || b < 0)
        throw new FormatError(`${at}: columns "start_frame", "stop_frame" must be non-negative frame numbers, received ${JSON.stringify(f[iStart])}, ${JSON.stringify(f[iStop])}`);
      if (a > b) throw new FormatError(`${at}: "start_frame" ${a} is after "stop_frame" ${b} (reversed)`);
      startFrame = a;
      stopFrame = b;
    }
    const frame = Number(f[iPoint]);
    if (f[iPoint].trim() === '' || !Number.isFinite(frame) || frame < 0)
      throw new FormatError(`${at}: column "point" must be a non-negative frame number, received ${JSON.stringify(f[iPoint])}`);
    rows.push({ line: n + 1, video: f[iVideo].trim(), label: f[iClass].trim(), frame, startFrame, stopFrame, fields: f });
  }
  if (rows.length === 0) throw new FormatError(`${file}: no point labels (a header and no rows); every training video needs its points`);
  return { header, rows };
}

/** The csv text of a header and rows of fields. */
export function pointLabelsText(header: string[], rows: (string | number)[][]): string {
  return [header.map(csvField).join(','), ...rows.map((r) => r.map((x) => (typeof x === 'number' ? String(x) : csvField(x))).join(','))].join('\n') + '\n';
}

/** Writes a point csv atomically. */
export function writePointLabels(file: string, header: string[], rows: (string | number)[][]): void {
  writeFileAtomic(file, pointLabelsText(header, rows));
}
