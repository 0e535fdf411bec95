/**
 * `pstal eval --gt gt_full.json --pred results.json --subset Test`: mAP of a results file at tIoU
 * thresholds (SPEC section 6), printed as the references' table, or as one JSON object with --json.
 */
import { parseArgs, CliError, OptionSpec } from './args';
import { SHARED } from './options';
import { EvalResult, THUMOS14_BLOCKED, evaluateDetection, evaluationJson, formatMapTable, parseTiou, subsetGroundTruth } from '../eval/detection';
import { filterAmbiguous } from '../eval/ambiguous';
import { GroundTruthFile, readGroundTruth } from '../formats/ground_truth';
import { DetectionResults, readResults } from '../formats/results';
import { readAmbiguous } from '../formats/splits';
import { emptyRecord } from '../formats/text';

export const EVAL_OPTIONS: Record<string, OptionSpec> = {
  gt: { type: 'string', describe: 'ground truth gt_full.json', required: true },
  pred: { type: 'string', describe: 'results JSON {"results": {video: [{label, score, segment}]}}', required: true },
  subset: { type: 'string', describe: "subset of the ground truth to score (THUMOS14: 'Test' or 'Validation')", required: true },
  tiou: { type: 'string', describe: "tIoU thresholds: 'start:stop:step' (stop included) or 'a,b,c'", default: '0.1:0.7:0.1' },
  'per-class': { type: 'boolean', describe: 'also print the AP of every class' },
  json: SHARED.json,
  ambiguous: { type: 'string', describe: 'ambiguous segments file (THUMOS14 Ambiguous_test.txt): overlapping detections are dropped' },
  blocked: { type: 'string', describe: "videos left out: 'thumos14', 'none' or a comma list (default: thumos14 when the subset holds them)" },
  'allow-unknown': { type: 'boolean', describe: 'score labels/videos unknown to the ground truth instead of failing (unknown labels are ignored)' },
};

function blockedList(spec: string | undefined, gt: GroundTruthFile, subset: string): string[] {
  if (spec === undefined) {
    // default: the THUMOS14 exclusions when any of those videos is in this subset
    return THUMOS14_BLOCKED.some((v) => gt.get(v)?.subset === subset) ? THUMOS14_BLOCKED : [];
  }
  if (spec === 'thumos14') return THUMOS14_BLOCKED;
  if (spec === 'none' || spec === '') return [];
  return spec.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('eval', argv, EVAL_OPTIONS);
  if (!a) return 0;
  const gtFile = a.gt as string;
  const subset = a.subset as string;
  let tiou: number[];
  try {
    tiou = parseTiou(a.tiou as string);
  } catch (e) {
    throw new CliError(`--tiou: ${(e as Error).message}`);
  }
  const gtParsed = readGroundTruth(gtFile);
  const blocked = blockedList(a.blocked as string | undefined, gtParsed, subset);
  const gt = subsetGroundTruth(gtParsed, subset, { blockedVideos: blocked, file: gtFile });
  let results: DetectionResults = readResults(a.pred as string);
  let droppedAmbiguous = 0;
  if (a.ambiguous) {
    const amb = readAmbiguous(a.ambiguous as string);
    const kept: DetectionResults = emptyRecord();
    for (const [video, dets] of Object.entries(results)) {
      kept[video] = filterAmbiguous(video, dets, amb);
      droppedAmbiguous += dets.length - kept[video].length;
    }
    results = kept;
  }
  let r: EvalResult;
  try {
    r = evaluateDetection(gt, results, { tiou, checkUnknown: !a['allow-unknown'] });
  } catch (e) {
    // name both files: the results hold what the ground truth does not know
    throw new Error(`results ${a.pred} against ground truth ${gtFile} (subset ${subset}): ${(e as Error).message.replace(/^evaluateDetection: /, '')}${/not in the ground/.test((e as Error).message) ? ' (--allow-unknown scores them anyway)' : ''}`);
  }
  if (a.json) {
    console.log(
      JSON.stringify({
        subset,
        ...evaluationJson(r),
        blockedVideos: blocked,
        droppedAmbiguous,
      }),
    );
    return 0;
  }
  console.log(
    `subset ${subset}: ${Object.keys(gt.videos).length} videos, ${r.numGroundTruth} ground-truth segments, ` +
      `${gt.classes.length} classes, ${r.numDetections} detections scored` +
      (blocked.length ? `, ${blocked.length} blocked videos` : '') +
      (a.ambiguous ? `, ${droppedAmbiguous} dropped as ambiguous` : ''),
  );
  console.log(formatMapTable(r));
  if (a['per-class']) {
    const w = Math.max(5, ...gt.classes.map((c) => c.length));
    const head = `${'class'.padEnd(w)} | ${r.tiou.map((t) => `@${Math.round(t * 1e9) / 1e9}`.padStart(6)).join(' | ')}`;
    console.log(`\n${head}\n${'-'.repeat(head.length)}`);
    for (const c of gt.classes)
      console.log(`${c.padEnd(w)} | ${r.apPerClass[c].map((x) => (100 * x).toFixed(2).padStart(6)).join(' | ')}`);
  }
  return 0;
}
