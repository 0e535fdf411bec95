/**
 * `pstal pseudo-labels` as a user meets it, on a tiny synthesized dataset and a run of a few
 * iterations (both methods): the file it writes is gt_full.json that readGroundTruth and `pstal eval
 * --gt` accept; every pseudo instance holds a labelled point of its class (checked against the point
 * csv itself, not the loader's reading of it) and the instances of a video and class can be given
 * distinct points (one instance a point); the quality it reports is what `pstal eval` gives for the
 * same scored instances against the true ground truth; --with-test-gt copies the test entries as they
 * are; bad input gets an error naming the option or file.
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readGroundTruth } from '../../lib/formats/ground_truth';
import { readPointLabels } from '../../lib/formats/point_labels';
import { readSplit } from '../../lib/formats/splits';
import { selectPseudoInstances } from '../../lib/models/hrpro/pseudo_gt';
import { main } from '../../lib/cli';

const bin = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');
const pstal = (args: string[], cwd: string) => spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, PSTAL_TS: '1' } });

/** The command line in this process (no second start-up of ts-node and the addon): exit code and output. */
async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...x: unknown[]) => void out.push(x.join(' '));
  console.error = (...x: unknown[]) => void err.push(x.join(' '));
  try {
    const status = await main(args);
    return { status, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** Whether every instance can be given a point of its own that it holds (Kuhn's augmenting paths). */
function distinctPoints(holds: number[][]): boolean {
  const owner = new Map<number, number>();
  const tryAssign = (i: number, seen: Set<number>): boolean => {
    for (const p of holds[i]) {
      if (seen.has(p)) continue;
      seen.add(p);
      if (!owner.has(p) || tryAssign(owner.get(p)!, seen)) {
        owner.set(p, i);
        return true;
      }
    }
    return false;
  };
  return holds.every((_, i) => tryAssign(i, new Set()));
}

test('selectPseudoInstances: exclusive detections first, a shared one kept once, one instance a point', (t) => {
  const classes = ['A', 'B'];
  const det = (label: string, score: number, s: number, e: number) => ({ label, score, segment: [s, e] as [number, number] });
  // points: A at 2 and 6, B at 4
  const points = [{ classIndex: 0, time: 2 }, { classIndex: 1, time: 4 }, { classIndex: 0, time: 6 }];
  // the best A detection spans both A points: each point takes its own narrower one instead
  let out = selectPseudoInstances([det('A', 0.9, 0, 8), det('A', 0.5, 1, 3), det('A', 0.4, 5, 7), det('B', 0.3, 3, 5), det('B', 0.8, 0, 1)], points, classes);
  t.deepEqual(out.map((p) => [p.label, p.segment, p.points]), [['A', [1, 3], [0]], ['A', [5, 7], [2]], ['B', [3, 5], [1]]]);
  // no exclusive detection for either A point: the best holding one, kept once for both
  out = selectPseudoInstances([det('A', 0.9, 0, 8), det('A', 0.5, 1.5, 6.5)], points, classes);
  t.deepEqual(out.map((p) => [p.segment, p.points]), [[[0, 8], [0, 2]]]);
  // 'match' hands the second point the next detection; 'best' keeps the shared one once
  t.deepEqual(selectPseudoInstances([det('A', 0.9, 0, 8), det('A', 0.5, 1.5, 6.5)], points, classes, 'match').map((p) => p.points), [[0], [2]]);
  t.is(selectPseudoInstances([det('A', 0.9, 0, 8), det('A', 0.5, 1, 3)], points, classes, 'best').length, 1);
  // a detection of another class, or not holding the point (closed segment ends hold it), serves nothing
  t.deepEqual(selectPseudoInstances([det('B', 0.9, 0, 8), det('A', 0.9, 2.5, 5.5)], points, classes).map((p) => p.label), ['B']);
  t.is(selectPseudoInstances([det('A', 0.9, 2, 2)], points, classes).length, 1);
});

test('pstal pseudo-labels: a gt_full.json whose every instance holds its own point; quality as pstal eval scores it; bad input named', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-pseudo-'));
  try {
    let r = pstal(['synth', '--out', 'data', '--videos', '12', '--dim', '16', '--duration-scale', '0.2', '--seed', '3', '--quiet'], dir);
    t.is(r.status, 0, r.stderr);
    r = pstal(['run', '--method', 'hrpro+tspnet', '--data', 'data', '--out', 'run', '--iterations', '6', '--test-every', '3', '--epochs', '2',
      '--lr', '1e-3', '--lr2', '1e-3', '--tspnet-iterations', '2', '--tspnet-test-every', '2', '--quiet'], dir);
    t.is(r.status, 0, r.stderr.slice(-3000));

    r = pstal(['pseudo-labels', '--model', 'run', '--data', 'data', '--out', 'pseudo.json', '--with-test-gt', '--out-results', 'scored.json', '--json', '--quiet'], dir);
    t.is(r.status, 0, r.stderr.slice(-3000));
    t.regex(r.stderr, /quality against the true training ground truth \(\d+ instances\), hrpro, --sharing exclusive:\n.*\|\s+tIoU \|\s+mAP \| recall \| precision \|.*\|\s+0\.7 \|/s);
    const summary = JSON.parse(r.stdout);
    t.true(summary.instances > 0, r.stderr);
    t.true(summary.instances <= summary.served && summary.served <= summary.points, r.stdout);

    const data = path.join(dir, 'data');
    const truth = readGroundTruth(path.join(data, 'gt_full.json'));
    const pseudo = readGroundTruth(path.join(dir, 'pseudo.json'));
    const trainNames = readSplit(path.join(data, 'split_train.txt'));
    const testNames = readSplit(path.join(data, 'split_test.txt'));
    const rows = readPointLabels(path.join(data, 'point_labels', 'point_gaussian.csv')).rows;

    /** Every training video's pseudo instances hold a csv point of their class, each its own. */
    const checkPoints = (file: Map<string, { subset: string; annotations: { label: string; segment: [number, number] }[] }>): number => {
      let n = 0;
      for (const [video, v] of file) {
        if (!trainNames.includes(video)) continue;
        t.is(v.subset, truth.get(video)!.subset, video);
        const fps = truth.get(video)!.fps!;
        for (const label of new Set(v.annotations.map((a) => a.label))) {
          const times = rows.filter((p) => p.video === video && p.label === label).map((p) => p.frame / fps);
          const holds = v.annotations.filter((a) => a.label === label).map((a) => times.map((x, i) => (a.segment[0] <= x && x <= a.segment[1] ? i : -1)).filter((i) => i >= 0));
          for (const h of holds) t.true(h.length > 0, `${video} ${label}: a pseudo instance holds no labelled point`);
          t.true(distinctPoints(holds), `${video} ${label}: ${holds.length} instances for fewer points`);
          n += holds.length;
        }
      }
      return n;
    };
    t.is(checkPoints(pseudo), summary.instances);
    // the training videos under their own subset name; the test split's entries copied as they are
    const trainSubset = truth.get(trainNames[0])!.subset;
    t.is([...pseudo.keys()].filter((v) => trainNames.includes(v)).length, summary.videos - summary.videosLeftOut);
    t.is(summary.testVideosCopied, testNames.length);
    for (const v of testNames) t.deepEqual(pseudo.get(v), truth.get(v), v);

    // pstal eval accepts the file: the scored instances against it are perfect, against the truth
    // they give the table the command printed
    const at = (f: string) => path.join(dir, f);
    let c = await cli(['eval', '--gt', at('pseudo.json'), '--pred', at('scored.json'), '--subset', trainSubset, '--json']);
    t.is(c.status, 0, c.stderr);
    t.deepEqual(JSON.parse(c.stdout).map, summary.tiou.map(() => 1));
    c = await cli(['eval', '--gt', at('data/gt_full.json'), '--pred', at('scored.json'), '--subset', trainSubset, '--json']);
    t.is(c.status, 0, c.stderr);
    const ev = JSON.parse(c.stdout);
    t.deepEqual(ev.tiou, summary.tiou);
    ev.map.forEach((m: number, k: number) => t.true(Math.abs(m - summary.map[k]) < 1e-12, `tIoU ${ev.tiou[k]}: eval ${m}, pseudo-labels ${summary.map[k]}`));
    t.is(ev.numGroundTruth, summary.numTrue);
    // recall at the lowest threshold cannot exceed the instances written over the true ones
    t.true(summary.recall[0] <= summary.instances / summary.numTrue + 1e-12);

    // the TSPNet plug-in's detections (a plug-in of 2 iterations: the file may hold few instances), one-to-one
    c = await cli(['pseudo-labels', '--model', at('run'), '--data', data, '--out', at('pseudo_tsp.json'), '--method', 'hrpro+tspnet', '--sharing', 'match', '--json', '--quiet']);
    t.is(c.status, 0, c.stderr.slice(-3000));
    const tsp = JSON.parse(c.stdout);
    t.is(tsp.method, 'hrpro+tspnet');
    t.true(tsp.detections > 0, c.stderr);
    t.is(checkPoints(readGroundTruth(at('pseudo_tsp.json'))), tsp.instances);
    t.regex(c.stderr, /hrpro\+tspnet, --sharing match:\n/);
    t.is(tsp.served, tsp.instances); // one-to-one

    // bad input: exit 2 naming the option, exit 1 naming the file
    const bad = async (args: string[], code: number, re: RegExp) => {
      const b = await cli(['pseudo-labels', ...args]);
      t.is(b.status, code, `${args.join(' ')}: ${b.stderr}`);
      t.regex(b.stderr, re);
    };
    const base = ['--model', at('run'), '--data', data];
    await bad([...base, '--out', at('x.json'), '--method', 'tspnet'], 2, /--method must be 'hrpro' or 'hrpro\+tspnet'/);
    await bad([...base, '--out', at('x.json'), '--sharing', 'all'], 2, /--sharing must be 'exclusive', 'best' or 'match', received 'all'/);
    await bad(['--model', at('nowhere'), '--data', data, '--out', at('x.json')], 2, /--model \S*nowhere: no such run folder/);
    await bad(['--model', data, '--data', data, '--out', at('x.json')], 2, /--model \S*data: no HR-Pro checkpoint/);
    await bad(['--model', at('run'), '--data', at('nodata'), '--out', at('x.json')], 2, /--data \S*nodata: no such dataset folder/);
    await bad([...base, '--out', at('missing/x.json')], 2, /--out \S*missing.x\.json: the folder \S*missing does not exist/);
    await bad([...base, '--out', at('data/gt_full.json')], 2, /would overwrite the dataset's own ground truth/);
    await bad([...base], 2, /option --out is required/);
    fs.mkdirSync(at('hr'));
    for (const f of fs.readdirSync(at('run'))) if (f !== 'tspnet') fs.copyFileSync(path.join(at('run'), f), path.join(at('hr'), f));
    await bad(['--model', at('hr'), '--data', data, '--out', at('x.json'), '--method', 'hrpro+tspnet'], 2, /--method hrpro\+tspnet: \S*hr.tspnet holds no TSPNet checkpoint/);
    const cfg = path.join(at('hr'), 'config.json');
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('"BaseballPitch"', '"Unheard"'));
    await bad(['--model', at('hr'), '--data', data, '--out', at('x.json')], 1, /--model \S*hr: the run's 20 classes are not the 20 classes of --data \S*data with --config thumos14/);
    fs.rmSync(path.join(data, 'split_test.txt'));
    await bad([...base, '--out', at('x.json'), '--with-test-gt'], 1, /split_test\.txt/);
    t.false(fs.existsSync(at('x.json')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
