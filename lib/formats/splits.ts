/**
 * splits.ts: split_train.txt / split_test.txt (SPEC §1), one video name a line, and
 * Ambiguous_test.txt, "video start end" a line (seconds): THUMOS14's ambiguous segments, whose
 * overlapping detections are dropped before scoring (SPEC §6).
 * A split entry is a file name stem (features/<split>/<video>.npy): an entry that could reach
 * outside that folder (a separator, `.`/`..`, an absolute path, NUL: lib/util/paths.ts) is
 * refused, naming the file and the line.
 */
import { readText, FormatError } from './text';
import { nameProblem } from '../util/paths';
import { writeFileAtomic } from '../util/fs';

export type Split = 'train' | 'test';

export const AMBIGUOUS_FILE = 'Ambiguous_test.txt';

/** The split list's file name. */
export const splitFile = (split: Split): string => `split_${split}.txt`;

/** Reads a split list (blank lines ignored; a name listed twice is an error). */
export function readSplit(file: string): string[] {
  const entries = readText(file, 'split file')
    .split(/\r?\n/)
    .map((s, i) => ({ name: s.trim(), line: i + 1 }))
    .filter((e) => e.name.length > 0);
  const names = entries.map((e) => e.name);
  const seen = new Map<string, number>();
  names.forEach((n, i) => {
    const why = nameProblem(n);
    if (why) throw new FormatError(`${file}: entry ${i + 1} ${JSON.stringify(n)} is not a video name (line ${entries[i].line}): it ${why}; a video name is a file name, features/<split>/<video>.npy, and must stay in its folder`);
    if (seen.has(n)) throw new FormatError(`${file}: video ${JSON.stringify(n)} is listed twice (entries ${seen.get(n)! + 1} and ${i + 1})`);
    seen.set(n, i);
  });
  return names;
}

/** Writes a split list atomically. */
export function writeSplit(file: string, names: readonly string[]): void {
  writeFileAtomic(file, names.map((n) => n + '\n').join(''));
}

/** Ambiguous segments: video -> [start, end] seconds. */
export type AmbiguousSegments = Map<string, [number, number][]>;

/** Reads Ambiguous_test.txt ("video start end" a line, any whitespace; blank lines skipped). */
export function readAmbiguous(file: string): AmbiguousSegments {
  const out: AmbiguousSegments = new Map();
  readText(file, 'ambiguous segments').split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const tokens = line.split(/\s+/);
    const start = Number(tokens[1]);
    const end = Number(tokens[2]);
    if (tokens.length !== 3 || !Number.isFinite(start) || !Number.isFinite(end))
      throw new FormatError(`${file}:${i + 1}: expected "video start end" (seconds), found ${JSON.stringify(line)}`);
    if (start > end || start < 0) throw new FormatError(`${file}:${i + 1}: [${start}, ${end}] ${start < 0 ? 'starts before 0 s' : 'is reversed (its start is after its end)'}`);
    let list = out.get(tokens[0]);
    if (!list) out.set(tokens[0], (list = []));
    list.push([start, end]);
  });
  return out;
}

/** Writes Ambiguous_test.txt atomically (one decimal, as THUMOS14's own file). */
export function writeAmbiguous(file: string, lines: readonly string[]): void {
  writeFileAtomic(file, lines.map((l) => l + '\n').join(''));
}
