/**
 * results.ts: detections in the ActivityNet results format (SPEC §6), what `pstal eval --pred`
 * scores, what training writes as RUN/stage{1,2}_results.json and `pstal test`/`detect` write:
 *   {"version": "VERSION 1.3", "results": {video: [{"label", "score", "segment": [s, e]}]}, "external_data": {...}}
 * Strict types: a score or a segment given as a string is an error naming the file and the field.
 * Written member by member (a test pass over ActivityNet 1.3 can write hundreds of MB).
 */
import { readJson, FormatError, isObject, entriesOf, emptyRecord, shown } from './text';
import { MAX_SEGMENT_SECONDS } from './ground_truth';
import { writeJsonFileAtomic } from '../util/json';

export interface Detection {
  label: string;
  score: number;
  /** [start, end] seconds */
  segment: [number, number];
}

/** video -> its detections (a null-prototype record: any video name is a plain key). */
export type DetectionResults = Record<string, Detection[]>;

/**
 * A [start, end] segment in seconds: two finite numbers, start <= end, within +-MAX_SEGMENT_SECONDS.
 * Detections may start before 0 (the reference's stage 2 writes such segments and its evaluation
 * scores them as they are).
 */
export function checkSegment(x: unknown, where: string): [number, number] {
  if (!Array.isArray(x) || x.length !== 2) throw new FormatError(`${where}.segment: expected [start, end] (two numbers), received ${shown(x)}`);
  const [s, e] = x as unknown[];
  if (typeof s !== 'number' || typeof e !== 'number' || !Number.isFinite(s) || !Number.isFinite(e))
    throw new FormatError(`${where}.segment: expected two finite numbers, received ${shown(x)}`);
  if (s > e) throw new FormatError(`${where}.segment: [${s}, ${e}] is reversed (its start is after its end)`);
  if (Math.abs(s) > MAX_SEGMENT_SECONDS || Math.abs(e) > MAX_SEGMENT_SECONDS)
    throw new FormatError(`${where}.segment: [${s}, ${e}] lies beyond ${MAX_SEGMENT_SECONDS} s; segments are seconds within a video`);
  return [s, e];
}

/** Reads a results file. */
export function readResults(file: string): DetectionResults {
  const data = readJson(file, 'results');
  if (!isObject(data) || !isObject(data.results)) throw new FormatError(`results ${file}: missing object field 'results'`);
  const out = emptyRecord<Detection[]>();
  for (const [video, list] of entriesOf(data.results)) {
    const where = `results ${file}: results.${video}`;
    if (!Array.isArray(list)) throw new FormatError(`${where}: expected an array of detections`);
    out[video] = list.map((d, i) => {
      const w = `${where}[${i}]`;
      if (!isObject(d)) throw new FormatError(`${w}: expected an object`);
      if (typeof d.label !== 'string') throw new FormatError(`${w}.label: expected a string, received ${shown(d.label)}`);
      if (typeof d.score !== 'number' || !Number.isFinite(d.score)) throw new FormatError(`${w}.score: expected a finite number, received ${shown(d.score)}`);
      return { label: d.label, score: d.score, segment: checkSegment(d.segment, w) };
    });
  }
  return out;
}

/** Writes a results file atomically; `extra` adds top-level fields (e.g. `units`). */
export function writeResults(file: string, results: Record<string, unknown[]>, details: string, extra: Record<string, unknown> = {}): void {
  writeJsonFileAtomic(file, { version: 'VERSION 1.3', ...extra, results, external_data: { used: true, details } });
}

/** The results file's text (for stdout): the same JSON writeResults writes. */
export function resultsText(results: Record<string, unknown[]>, details: string): string {
  return JSON.stringify({ version: 'VERSION 1.3', results, external_data: { used: true, details } });
}
