/**
 * Names from data are keys, never Object.prototype's: the whole command-line pipeline (`pstal run
 * --method hrpro+tspnet`, `pstal detect` with both models, `pstal eval`, `pstal report`) on a small
 * synthesized dataset, and again on the same dataset with its videos and classes renamed to
 * `__proto__`, `constructor`, `toString`, `hasOwnProperty`, unicode... (the rename rewrites
 * gt_full.json, the split lists, Ambiguous_test.txt, the point csv and the feature file names).
 * With the same seed both give the same mAP tables, and every file they write (detections,
 * proposals, TSPNet's base proposals, the per-class AP) is the other's through the renaming.
 *
 * The renaming keeps the order: class indices are the sorted labels, and the evaluator breaks
 * score ties by sorted video name, so within each split the k-th video (and the k-th class) in
 * sorted order gets the k-th new name in sorted order. Two renamings: `__proto__` a test video
 * (its detections once vanished from the results files, and from the score) and `__proto__` a
 * training video (proposals.json, TSPNet's base proposals and its moved points in the training state).
 */
import test from 'ava';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadSafetensors } from '../../lib/io/safetensors';

const bin = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');

/** `pstal args` in `cwd`, asynchronously (the three pipelines share the cores). */
function pstal(args: string[], cwd: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, PSTAL_TS: '1', PSTAL_NUM_THREADS: '1' } });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    p.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Names that are Object.prototype's members or otherwise awkward as keys; sorted, they differ from the synthetic names' order only by position. */
const HOSTILE_A = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'vidéo_😀'];
const HOSTILE_B = ['__defineGetter__', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'toJSON', 'prototype'];
const HOSTILE_CLASSES = ['__proto__', 'constructor', 'toString', 'classé 😀', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineSetter__', 'toJSON', 'length',
  'then', 'prototype', 'propertyIsEnumerable', '__lookupGetter__', 'toLocaleString', 'name', 'caller', 'arguments', 'apply', 'bind'];

const sorted = (xs: string[]): string[] => [...xs].sort();
/** old -> new, the k-th of each in sorted order */
const pairUp = (old: string[], fresh: string[]): Map<string, string> => {
  if (fresh.length < old.length) throw new Error(`${old.length} names to replace, ${fresh.length} new ones`);
  const f = sorted(fresh.slice(0, old.length));
  return new Map(sorted(old).map((o, i) => [o, f[i]]));
};
const lines = (file: string): string[] => fs.readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim());

interface Renaming {
  videos: Map<string, string>;
  classes: Map<string, string>;
}

/** A copy of the dataset at `src` with its videos and classes renamed (test videos from `testNames`, training videos from `trainNames`). */
function renameDataset(src: string, dst: string, testNames: string[], trainNames: string[]): Renaming {
  const db = JSON.parse(fs.readFileSync(path.join(src, 'gt_full.json'), 'utf8')).database as Record<string, { annotations: { label: string }[] }>;
  const labels = [...new Set(Object.values(db).flatMap((v) => v.annotations.map((a) => a.label)))];
  const videos = new Map([...pairUp(lines(path.join(src, 'split_test.txt')), testNames), ...pairUp(lines(path.join(src, 'split_train.txt')), trainNames)]);
  const classes = pairUp(labels, HOSTILE_CLASSES);
  const V = (v: string): string => videos.get(v) ?? assert(`video ${v}`);
  const C = (c: string): string => classes.get(c) ?? assert(`class ${c}`);
  // Object.fromEntries makes "__proto__" an own key, as JSON.parse reads it back
  const database = Object.fromEntries(Object.entries(db).map(([k, v]) => [V(k), { ...v, annotations: v.annotations.map((a) => ({ ...a, label: C(a.label) })) }]));
  fs.mkdirSync(path.join(dst, 'point_labels'), { recursive: true });
  fs.writeFileSync(path.join(dst, 'gt_full.json'), JSON.stringify({ database }));
  for (const s of ['split_train.txt', 'split_test.txt']) fs.writeFileSync(path.join(dst, s), lines(path.join(src, s)).map(V).join('\n') + '\n');
  fs.writeFileSync(path.join(dst, 'Ambiguous_test.txt'), lines(path.join(src, 'Ambiguous_test.txt')).map((l) => l.replace(/^\S+/, V)).join('\n') + '\n');
  const [header, ...rows] = lines(path.join(src, 'point_labels', 'point_gaussian.csv'));
  const cols = header.split(',');
  const [iClass, iVideo] = [cols.indexOf('class'), cols.indexOf('video_id')];
  const renamed = rows.map((r) => {
    const f = r.split(',');
    f[iClass] = C(f[iClass]);
    f[iVideo] = V(f[iVideo]);
    return f.join(',');
  });
  fs.writeFileSync(path.join(dst, 'point_labels', 'point_gaussian.csv'), [header, ...renamed].join('\n') + '\n');
  for (const split of ['train', 'test']) {
    fs.mkdirSync(path.join(dst, 'features', split), { recursive: true });
    for (const f of fs.readdirSync(path.join(src, 'features', split)))
      fs.copyFileSync(path.join(src, 'features', split, f), path.join(dst, 'features', split, `${V(f.replace(/\.npy$/, ''))}.npy`));
  }
  return { videos, classes };
}

function assert(what: string): never {
  throw new Error(`renaming: no new name for ${what}`);
}

type Dets = { label?: string; score?: number; segment: number[] }[];

/** A results file's {video: detections} as entries, file order, videos and labels through `r` (or as they are). */
function resultsEntries(file: string, r?: Renaming): [string, Dets][] {
  const res = JSON.parse(fs.readFileSync(file, 'utf8')).results as Record<string, Dets>;
  return Object.keys(res).map((v) => [r ? r.videos.get(v)! : v, res[v].map((d) => (d.label === undefined ? d : { ...d, label: r ? r.classes.get(d.label)! : d.label }))]);
}

/** proposals.json as entries (videos and class keys through `r`). */
function proposalEntries(file: string, r?: Renaming): unknown {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<'train' | 'test', Record<string, Record<string, unknown>>>;
  const V = (v: string): string => (r ? r.videos.get(v)! : v);
  const byClass = (x: Record<string, unknown> | undefined): unknown => x && Object.keys(x).map((c) => [r ? r.classes.get(c)! : c, x[c]]);
  return (['train', 'test'] as const).map((s) => Object.keys(p[s]).map((v) => [V(v), byClass(p[s][v].PP as Record<string, unknown>), byClass(p[s][v].RP as Record<string, unknown>), p[s][v].NP ?? null]));
}

/** The mAP table rows `pstal run` prints (stage 1, stage 2, TSPNet, and each test during training). */
const tableRows = (log: string): string[] => [...log.matchAll(/^\|[^\n]*\|$/gm)].map((m) => m[0]);

const RUN = ['run', '--method', 'hrpro+tspnet', '--config', 'gtea', '--out', 'run', '--iterations', '10', '--test-every', '5', '--batch-size', '4', '--lr', '1e-3',
  '--epochs', '2', '--tspnet-iterations', '6', '--tspnet-test-every', '3', '--tspnet-batch-size', '4', '--tspnet-lr', '1e-3', '--update-every', '2', '--seed', '3', '--threads', '1', '--quiet'];

/** run, detect (HR-Pro and TSPNet, with plots), eval (with the ambiguous segments) and report, in `dir` on `dir/data`. */
async function pipeline(dir: string, full: boolean): Promise<Record<string, { status: number | null; stdout: string; stderr: string }>> {
  const out: Record<string, { status: number | null; stdout: string; stderr: string }> = {};
  out.run = await pstal([...RUN, '--data', 'data'], dir);
  if (out.run.status !== 0 || !full) return out;
  const features = lines(path.join(dir, 'data', 'split_test.txt')).flatMap((v) => ['--features', path.join('data', 'features', 'test', `${v}.npy`)]);
  out.detect = await pstal(['detect', '--model', 'run', ...features, '--out', 'det.json', '--plot', 'plots', '--threads', '1'], dir);
  out.detectTsp = await pstal(['detect', '--model', 'run/tspnet', ...features, '--out', 'det-tsp.json', '--threads', '1'], dir);
  const evalArgs = ['eval', '--gt', 'data/gt_full.json', '--subset', 'Test', '--json', '--allow-unknown'];
  out.evalDetect = await pstal([...evalArgs, '--pred', 'det.json'], dir);
  out.evalRun = await pstal([...evalArgs, '--pred', 'run/stage2_results.json', '--ambiguous', 'data/Ambiguous_test.txt'], dir);
  out.report = await pstal(['report', 'run', '--out', 'report.html'], dir);
  return out;
}

test('videos and classes named __proto__, constructor, toString, unicode: the same numbers as plain names, run to report', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-hostile-'));
  try {
    const dirs = { plain: path.join(root, 'plain'), a: path.join(root, 'a'), b: path.join(root, 'b') };
    await synthesizeDataset({ out: path.join(dirs.plain, 'data'), dim: 16, seed: 0, videos: 12, knobs: { durationScale: 0.2 } });
    const ra = renameDataset(path.join(dirs.plain, 'data'), path.join(dirs.a, 'data'), HOSTILE_A, HOSTILE_B);
    const rb = renameDataset(path.join(dirs.plain, 'data'), path.join(dirs.b, 'data'), HOSTILE_B, HOSTILE_A);
    t.true([...ra.videos.values()].includes('__proto__') && lines(path.join(dirs.a, 'data', 'split_test.txt')).includes('__proto__'));
    t.true(lines(path.join(dirs.b, 'data', 'split_train.txt')).includes('__proto__'));
    t.true(['__proto__', 'constructor', 'toString'].every((c) => [...ra.classes.values()].includes(c)), [...ra.classes.values()].join(', '));

    const [plain, a, b] = await Promise.all([pipeline(dirs.plain, true), pipeline(dirs.a, true), pipeline(dirs.b, false)]);
    for (const [name, r] of Object.entries({ plain, a, b })) for (const [cmd, x] of Object.entries(r)) t.is(x.status, 0, `${name} ${cmd}: ${x.stderr.slice(-2000)}`);

    // pstal run: every test table (stage 1, stage 2, TSPNet) the same; the ranking's counts the same
    const rows = tableRows(plain.run.stderr);
    t.true(rows.length >= 3 * 2, plain.run.stderr); // at least the best checkpoints of stage 1, stage 2 and TSPNet
    t.true(rows.some((l) => /\|\s+[1-9]\d*\.\d\d \|/.test(l)), 'some non-zero mAP'); // the comparison is not of zeros only
    const ranking = (s: string): string | undefined => /ranking: (\d+ PP, \d+ RP, \d+ NP)/.exec(s)?.[1];
    for (const [name, x, r] of [['a', a, ra], ['b', b, rb]] as const) {
      t.deepEqual(tableRows(x.run.stderr), rows, name);
      t.is(ranking(x.run.stderr), ranking(plain.run.stderr), name);
      const d = dirs[name];
      // every file of the run: the plain run's through the renaming
      for (const f of ['stage1_results.json', 'stage2_results.json', 'tspnet/tspnet_results.json', 'tspnet/proposals_train.json', 'tspnet/proposals_test.json'])
        t.deepEqual(resultsEntries(path.join(d, 'run', f)), resultsEntries(path.join(dirs.plain, 'run', f), r), `${name}: ${f}`);
      t.deepEqual(proposalEntries(path.join(d, 'run', 'proposals.json')), proposalEntries(path.join(dirs.plain, 'run', 'proposals.json'), r), `${name}: proposals.json`);
      // TSPNet's moved points are kept for every training video in its saved state (--resume reads them)
      const state = JSON.parse(loadSafetensors(path.join(d, 'run', 'tspnet', 'tspnet_last.safetensors')).metadata.state) as { extra: { points: Record<string, number[]>; updates: number } };
      t.true(state.extra.updates > 0);
      t.deepEqual(Object.keys(state.extra.points).sort(), lines(path.join(d, 'data', 'split_train.txt')).sort(), `${name}: moved points`);
    }

    // pstal detect: the same detections for the video named __proto__ as for the plain one; one plot a video
    t.deepEqual(resultsEntries(path.join(dirs.a, 'det.json')), resultsEntries(path.join(dirs.plain, 'det.json'), ra));
    t.deepEqual(resultsEntries(path.join(dirs.a, 'det-tsp.json')), resultsEntries(path.join(dirs.plain, 'det-tsp.json'), ra));
    t.true(resultsEntries(path.join(dirs.a, 'det.json')).some(([v, ds]) => v === '__proto__' && ds.length > 0));
    for (const v of HOSTILE_A) t.true(fs.existsSync(path.join(dirs.a, 'plots', `${v}.svg`)), v);

    // pstal eval: the same mAP; AP per class under the new names
    for (const k of ['evalDetect', 'evalRun'] as const) {
      const p = JSON.parse(plain[k].stdout);
      const h = JSON.parse(a[k].stdout);
      t.deepEqual(h.map, p.map, k);
      t.deepEqual(h.averages, p.averages, k);
      t.is(h.numDetections, p.numDetections, k);
      t.deepEqual(Object.keys(h.apPerClass).map((c) => [c, h.apPerClass[c]]), Object.keys(p.apPerClass).map((c) => [ra.classes.get(c), p.apPerClass[c]]), k);
    }
    t.true(JSON.parse(plain.evalDetect.stdout).map[0] > 0);

    // pstal report: the same tables and per-class AP, the same number of timelines
    const summary = (s: string): string => /report: (.*), \d+ KiB/.exec(s)?.[1] ?? s;
    t.is(summary(a.report.stderr), summary(plain.report.stderr));
    // the number cells of the mAP tables, the per-class AP table and the ranking's counts (not the facts: they hold the folders)
    const cells = (file: string): string[] =>
      [...fs.readFileSync(file, 'utf8').matchAll(/<table class="num"[^>]*>([\s\S]*?)<\/table>/g)].flatMap((tb) => [...tb[1].matchAll(/<td>([^<]*)<\/td>/g)].map((m) => m[1]));
    const numbers = cells(path.join(dirs.plain, 'report.html'));
    t.true(numbers.length > 20, numbers.join(' '));
    t.deepEqual(cells(path.join(dirs.a, 'report.html')), numbers);
    const html = fs.readFileSync(path.join(dirs.a, 'report.html'), 'utf8');
    for (const v of HOSTILE_A) t.true(html.includes(`>${v} (test,`), `timeline of ${v}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
