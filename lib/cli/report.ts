/**
 * `pstal report RUN [--data DIR] [--out report.html]`: one self-contained HTML page of a run
 * (lib/plot/report.ts): the configuration, both stages' learning curves (stage{1,2}_metrics.jsonl),
 * the best checkpoints' mAP tables, the per-class AP of the final results (stage2_results.json, or
 * stage1_results.json for a stage-1 run) against the ground truth, the ranking's PP/RP/NP counts
 * (proposals.json), and a timeline per test video (class scores and actionness from a model pass,
 * the run's detections, the ground truth, the point labels) with a video picker.
 *
 * The data folder (ground truth, features) is --data, or the one `pstal run` / `pstal train`
 * recorded in RUN/dataset.json. Without it the page has the curves, the tables of the metrics
 * files and the counts, and says what is missing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, CliError, OptionSpec } from './args';
import { version } from './version';
import { loadConfig, loadDataset, Split, VideoRecord } from '../data';
import { evaluateDetection, subsetGroundTruth, EvalResult } from '../eval/detection';
import { DetectionResults, readResults } from '../formats/results';
import { readMetrics } from '../formats/metrics';
import { readProposals, PROPOSALS_FILE } from '../formats/proposals';
import { readDatasetRecord, readRunConfigIfPresent } from '../formats/run_config';
import { emptyRecord } from '../formats/text';
import { stage1Paths, stage2Paths } from '../models/hrpro/checkpoint';
import { metricsSvg } from '../plot/metrics';
import { timelineSvg } from '../plot/timeline';
import { videoTimeline } from '../plot/video';
import { reportHtml, ReportInput, ReportStageTable, ReportTimeline } from '../plot/report';
import { writeFileAtomic } from '../util/fs';
import { isInside } from '../util/paths';
import { GT_FILE } from '../formats/ground_truth';
import { POINT_FILE } from '../formats/point_labels';
import { AMBIGUOUS_FILE, splitFile } from '../formats/splits';
import { refuseOutputOverInputs, runFiles } from './outputs';

export const REPORT_OPTIONS: Record<string, OptionSpec> = {
  run: { type: 'string', describe: 'the run folder (also accepted as the first argument: pstal report RUN)' },
  data: { type: 'string', describe: 'dataset folder of the run (default: the one recorded in RUN/dataset.json by pstal run/train)' },
  config: { type: 'string', describe: 'dataset config of the run (default: the one recorded in RUN/dataset.json, else thumos14)' },
  out: { type: 'string', describe: 'the HTML file to write (default: RUN/report.html)' },
  split: { type: 'string', describe: "videos with a timeline: 'test', 'train' or 'all'", default: 'test' },
  'max-videos': { type: 'number', describe: 'at most this many timelines, the first videos of each split file (default: all)' },
  device: { type: 'string', describe: "'cpu' or 'cuda' for the model pass that gives the class scores", default: 'cpu' },
};

type Json = Record<string, unknown>;

interface TestLine {
  map: number[];
  averages: Record<string, number | undefined>;
}

/** The table of the best test in a metrics file (the line of bestIteration / bestEpoch). */
function bestTable(lines: Json[], key: 'iteration' | 'epoch', title: string, tiou: number[]): { table: ReportStageTable; at: number; best: number } | null {
  const last = lines[lines.length - 1];
  if (!last) return null;
  const bestKey = key === 'iteration' ? 'bestIteration' : 'bestEpoch';
  const at = last[bestKey] as number | undefined;
  const line = lines.find((l) => l[key] === at && l.test) ?? [...lines].reverse().find((l) => l.test);
  if (!line) return null;
  const t = line.test as TestLine;
  return { table: { title: `${title} (${key} ${line[key]})`, tiou: tiou.length === t.map.length ? tiou : t.map.map((_, i) => i), map: t.map, averages: t.averages }, at: line[key] as number, best: last.best as number };
}

/** PP/RP/NP totals of proposals.json's training videos (as the ranking counts them), and per class. */
function proposalCounts(file: string): ReportInput['proposals'] {
  if (!fs.existsSync(file)) return null;
  const p = readProposals(file);
  const out = { PP: 0, RP: 0, NP: 0, videos: 0, perClass: emptyRecord<{ PP: number; RP: number }>() };
  for (const v of Object.values(p.train)) {
    out.videos++;
    for (const [c, spans] of Object.entries(v.PP)) {
      out.PP += spans.length / 3;
      (out.perClass[c] ??= { PP: 0, RP: 0 }).PP += spans.length / 3;
    }
    for (const [c, spans] of Object.entries(v.RP)) {
      const n = spans.filter((x) => x).length;
      out.RP += n;
      (out.perClass[c] ??= { PP: 0, RP: 0 }).RP += n;
    }
    out.NP += v.NP.length / 3;
  }
  return out;
}

/** A metrics file's lines; lines that do not parse are left out with a warning. */
function metricsLines(file: string, warnings: string[]): Json[] {
  const m = readMetrics(file);
  if (m.badLines.length) warnings.push(`${file}: line(s) ${m.badLines.join(', ')} are not JSON objects; left out`);
  return m.lines.map((l) => l.value);
}

export async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  let positional: string | undefined;
  if (args.length && !args[0].startsWith('-')) positional = args.shift();
  const a = parseArgs('report', args, REPORT_OPTIONS);
  if (!a) return 0;
  const run = (a.run as string | undefined) ?? positional;
  if (!run) throw new CliError('which run? pstal report RUN [--data DIR] [--out report.html]');
  if (positional && a.run && positional !== a.run) throw new CliError(`two runs given: ${positional} and --run ${a.run}`);
  if (!['test', 'train', 'all'].includes(a.split as string)) throw new CliError(`--split must be 'test', 'train' or 'all', received '${a.split}'`);
  const maxVideos = a['max-videos'] as number | undefined;
  if (maxVideos !== undefined && !(Number.isInteger(maxVideos) && maxVideos >= 0)) throw new CliError(`--max-videos must be a non-negative integer, received ${maxVideos}`);
  const p1 = stage1Paths(run);
  const p2 = stage2Paths(run);
  const cfg1 = readRunConfigIfPresent(p1.config);
  if (!cfg1) throw new Error(`${run}: no config.json: not a run folder of pstal run / pstal train`);
  const cfg2 = readRunConfigIfPresent(p2.config);
  const recorded = readDatasetRecord(run);
  const warnings: string[] = [];
  let data = a.data as string | undefined;
  if (!data && typeof recorded?.data === 'string') {
    if (fs.existsSync(recorded.data)) data = recorded.data;
    else warnings.push(`the run's data folder ${recorded.data} (RUN/dataset.json) is gone: no per-class AP and no timelines; give --data`);
  }
  const out = (a.out as string | undefined) ?? path.join(run, 'report.html');
  // the page must not replace what it is made from: the run's files, the data's
  refuseOutputOverInputs('--out', out, [
    ...runFiles(run).map((f) => ['a file of the run folder', f] as [string, string]),
    ...(data ? [GT_FILE, splitFile('train'), splitFile('test'), POINT_FILE, AMBIGUOUS_FILE].map((f) => ['a file of the data folder', path.join(data!, f)] as [string, string]) : []),
  ]);
  if (data && isInside(out, path.join(data, 'features'))) throw new CliError(`--out ${out} lies in the data's features folder ${path.join(data, 'features')}; choose another --out`);
  const configName = (a.config as string | undefined) ?? (typeof recorded?.config === 'string' ? recorded.config : 'thumos14');
  const classNames = cfg1.classNames ?? [];
  const featureDim = cfg1.featureDim;
  const s1 = (cfg1.stage1 ?? {}) as Json;
  const s2 = (cfg2?.stage2 ?? {}) as Json;
  const tiou = (s1.tiou as number[]) ?? [];

  // ---- curves and the metrics files' best tables ------------------------------------------------------
  const m1 = metricsLines(p1.metrics, warnings);
  const m2 = metricsLines(p2.metrics, warnings);
  const b1 = bestTable(m1, 'iteration', 'Stage 1, best checkpoint: test mAP (%)', tiou);
  const b2 = bestTable(m2, 'epoch', 'Stage 2, best checkpoint: test mAP (%)', (s2.tiou as number[]) ?? tiou);
  const tables = [b1?.table, b2?.table].filter((t): t is ReportStageTable => Boolean(t));

  // ---- final evaluation, per class ------------------------------------------------------------------------
  const resultsFile = [p2.results, p1.results].find((f) => fs.existsSync(f));
  let results: DetectionResults | null = null;
  if (resultsFile) results = readResults(resultsFile);
  let evaluation: EvalResult | null = null;
  let evaluationOf = resultsFile ? 'Per-class AP needs the ground truth: give --data.' : 'No results file (stage1_results.json / stage2_results.json) in the run folder.';
  const splits: Split[] = a.split === 'all' ? ['train', 'test'] : [a.split as Split];
  let videos: VideoRecord[] = [];
  let dataset: ReturnType<typeof loadDataset> | null = null;
  let config: ReturnType<typeof loadConfig> | null = null;
  if (data) {
    config = loadConfig(configName, { featureDim });
    const loadSplits: Split[] = splits.includes('test') ? splits : [...splits, 'test'];
    dataset = loadDataset(data, config, { splits: loadSplits, onWarning: (m) => warnings.push(m), maxVideos });
    if (JSON.stringify(dataset.classNames) !== JSON.stringify(classNames))
      warnings.push(`the classes of ${data} (${dataset.classNames.length}) are not the run's (${classNames.length}): is this the run's dataset?`);
    if (results && resultsFile) {
      const gt = subsetGroundTruth(dataset.groundTruth, dataset.testSubset, { blockedVideos: config.blockedVideos, file: dataset.gtFile });
      const kept: DetectionResults = emptyRecord();
      for (const name of Object.keys(gt.videos)) if (Object.hasOwn(results, name)) kept[name] = results[name];
      evaluation = evaluateDetection(gt, kept, { tiou: (s2.tiou as number[]) ?? tiou, checkUnknown: false });
      evaluationOf = `${path.basename(resultsFile)} on subset "${dataset.testSubset}" of ${dataset.gtFile}`;
      tables.push({ title: `Final: ${path.basename(resultsFile)} (the best checkpoint's detections) re-scored: mAP (%)`, tiou: evaluation.tiou, map: evaluation.map, averages: evaluation.averages });
    }
    videos = splits.flatMap((s) => (s === 'train' ? dataset!.train : dataset!.test));
  }

  // ---- timelines: a model pass for the class scores ------------------------------------------------------
  const timelines: ReportTimeline[] = [];
  let timelinesNote: string | undefined;
  if (!data) timelinesNote = 'Timelines need the test videos\' features: give --data (or run pstal run, which records the data folder).';
  else if (!fs.existsSync(p1.best)) timelinesNote = 'No stage-1 checkpoint in the run folder: no class scores to draw.';
  else {
    const { loadHrPro, detect } = await import('../models/hrpro/detect');
    const model = loadHrPro(run, { device: a.device as string });
    try {
      for (const v of videos) {
        const r = detect(model, v.features, { name: v.name, ambiguous: dataset!.ambiguous });
        const runDetections = v.split === 'test' && results && Object.hasOwn(results, v.name) && results[v.name];
        const dets = runDetections || r.detections;
        const points = v.points.map((p) => ({ label: classNames[p.classIndex] ?? String(p.classIndex), time: p.time }));
        const input = videoTimeline(`${v.name} (${v.split}): ${dets.length} detections, ${v.gt.length} ground-truth instances, ${points.length} points`, { detections: dets, scores: r.scores }, model.classNames, model.cfg1.secondsPerSnippet, v.gt, points);
        timelines.push({ video: v.name, note: `${v.split}, ${v.gt.length} gt, ${points.length} pts`, svg: timelineSvg(input) });
      }
    } finally {
      model.dispose();
    }
    if (!timelines.length) timelinesNote = `No ${a.split} videos with features in ${data}.`;
  }

  // ---- the page ----------------------------------------------------------------------------------------------
  const facts: [string, string][] = [
    ['run folder', path.resolve(run)],
    ['data', data ? `${path.resolve(data)} (config ${configName})` : 'not given'],
    ['classes', `${classNames.length}: ${classNames.join(', ')}`],
    ['feature width D', String(featureDim)],
    ['training videos', String(cfg1.train ?? '?')],
  ];
  if (dataset) facts.push(['test videos', `${dataset.test.length} (subset "${dataset.testSubset}")`]);
  facts.push(['stage 1', `${s1.iterations} iterations of ${s1.batchSize} videos, lr ${s1.lr}, seed ${s1.seed}, model selection: ${s1.selection}`]);
  if (b1) facts.push(['stage 1 best', `avg mAP ${(100 * b1.best).toFixed(2)} at iteration ${b1.at}`]);
  if (cfg2) facts.push(['stage 2', `${s2.epochs} epochs of batches of ${s2.batchSize} videos, lr ${s2.lr}`]);
  if (b2) facts.push(['stage 2 best', `avg mAP ${(100 * b2.best).toFixed(2)} at epoch ${b2.at}`]);
  const configs: { name: string; json: object }[] = [{ name: 'config.json (stage 1)', json: cfg1 }];
  if (cfg2) configs.push({ name: 'stage2_config.json', json: cfg2 });
  if (recorded) configs.push({ name: 'dataset.json', json: recorded });
  const html = reportHtml({
    title: `pstal report: ${path.basename(path.resolve(run))}`,
    run: path.resolve(run),
    data: data ? path.resolve(data) : undefined,
    generated: new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC',
    version: version(),
    facts,
    configs,
    curvesSvg: metricsSvg(run),
    tables,
    evaluation,
    evaluationOf,
    proposals: proposalCounts(path.join(run, PROPOSALS_FILE)),
    timelines,
    timelinesNote,
    warnings,
  });
  writeFileAtomic(out, html);
  console.error(`report: ${tables.length} table(s), ${evaluation ? `per-class AP of ${Object.keys(evaluation.apPerClass).length} classes, ` : ''}${timelines.length} timeline(s), ${(html.length / 1024).toFixed(0)} KiB -> ${path.resolve(out)}`);
  for (const w of warnings) console.error(`warning: ${w}`);
  return 0;
}
