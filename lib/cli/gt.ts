/**
 * `pstal gt --annotations DIR --out DIR2 [--fps F] [--duration-margin M] [--holdout F --seed S] [--force]`:
 * an annotation folder whose gt_full.json is formed from its point-label csv's start and stop
 * frames (ActivityNet 1.3's released labels: its annotation folder has no gt_full.json, and only
 * its training videos have rows): lib/data/points.ts groundTruthFromPoints. DIR2 gets
 * gt_full.json, the split lists of the videos in it and their point labels, ready for
 * `pstal synth --annotations DIR2`. DIR2 must be new or empty (--force: write over it), and never DIR.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, CliError, OptionSpec } from './args';
import { groundTruthFromPoints } from '../data/points';
import { GT_FILE, writeGroundTruth } from '../formats/ground_truth';
import { POINT_FILE, writePointLabels } from '../formats/point_labels';
import { splitFile, writeSplit } from '../formats/splits';
import { refuseOutputOverInputs, requireEmptyFolder } from './outputs';

export const GT_OPTIONS: Record<string, OptionSpec> = {
  annotations: { type: 'string', describe: 'annotation folder: point_labels/point_gaussian.csv (with start_frame, stop_frame), split_train.txt, split_test.txt', required: true },
  out: { type: 'string', describe: 'folder to write gt_full.json, split_train.txt, split_test.txt and point_labels/ into', required: true },
  fps: { type: 'number', describe: "every video's frame rate (the csv's frames are at the video's fps, which it does not record; ActivityNet's videos are mostly 29.97)", default: 29.97 },
  'duration-margin': { type: 'number', describe: "a video lasts this fraction longer than its last instance's end (the csv does not record durations)", default: 0.1 },
  'min-duration': { type: 'number', describe: 'seconds: leave out a video whose instances all end before this (degenerate annotations: 24 of ActivityNet 1.3 videos have only instances like [0.01, 0.02] s)', default: 1 },
  holdout: { type: 'number', describe: 'draw the test split from the labelled training videos, this fraction of them (for a csv that labels only the training split, as ActivityNet 1.3\'s)' },
  seed: { type: 'number', describe: 'random seed of the --holdout draw', default: 0 },
  'train-subset': { type: 'string', describe: 'subset name of the training videos in gt_full.json', default: 'training' },
  'test-subset': { type: 'string', describe: 'subset name of the test videos', default: 'validation' },
  force: { type: 'boolean', describe: 'write into an --out folder that is not empty (files of the same names are replaced, the others stay)' },
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('gt', argv, GT_OPTIONS);
  if (!a) return 0;
  if (!((a.fps as number) > 0)) throw new CliError(`--fps must be a positive number, received ${a.fps}`);
  if (!((a['duration-margin'] as number) >= 0)) throw new CliError(`--duration-margin must be non-negative, received ${a['duration-margin']}`);
  if (!Number.isInteger(a.seed as number)) throw new CliError(`--seed must be an integer, received ${a.seed}`);
  const dir = a.annotations as string;
  const out = a.out as string;
  const csv = path.join(dir, POINT_FILE);
  refuseOutputOverInputs('--out', out, [['the --annotations folder', dir]]);
  requireEmptyFolder('--out', out, Boolean(a.force));
  // file by file too: a link in --out may lead to an input
  const inputs: [string, string][] = [POINT_FILE, splitFile('train'), splitFile('test')].map((f) => ['the input', path.join(dir, f)]);
  for (const f of [GT_FILE, POINT_FILE, splitFile('train'), splitFile('test')]) refuseOutputOverInputs('--out', path.join(out, f), inputs);
  const r = groundTruthFromPoints(csv, path.join(dir, splitFile('train')), path.join(dir, splitFile('test')), {
    fps: a.fps as number,
    durationMargin: a['duration-margin'] as number,
    minDuration: a['min-duration'] as number,
    holdout: a.holdout as number | undefined,
    seed: a.seed as number,
    trainSubset: a['train-subset'] as string,
    testSubset: a['test-subset'] as string,
  });
  fs.mkdirSync(path.join(out, path.dirname(POINT_FILE)), { recursive: true });
  writeGroundTruth(path.join(out, GT_FILE), r.gt);
  writeSplit(path.join(out, splitFile('train')), r.splits.train);
  writeSplit(path.join(out, splitFile('test')), r.splits.test);
  // the point labels of the videos kept (the loader would warn about the others' rows)
  writePointLabels(path.join(out, POINT_FILE), r.header, r.keptRows.map((row) => row.fields));
  const left = r.withoutPoints.train + r.withoutPoints.test;
  console.error(
    `gt: ${r.splits.train.length} training and ${r.splits.test.length} test videos${a.holdout !== undefined ? ` (test: ${a.holdout} of the labelled training videos, seed ${a.seed})` : ''}, ` +
      `${r.instances} instances; fps ${a.fps} and duration = last end x ${1 + (a['duration-margin'] as number)} (guesses: the csv records neither) -> ${path.resolve(out)}` +
      (left ? `\ngt: left out ${r.withoutPoints.train} training and ${r.withoutPoints.test} test videos without a row in ${csv}` : '') +
      (r.degenerate.length ? `\ngt: left out ${r.degenerate.length} videos whose instances all end before ${a['min-duration']} s (degenerate annotations), e.g. ${r.degenerate.slice(0, 3).join(', ')}` : ''),
  );
  return 0;
}
