/**
 * `pstal train --method tspnet` and `pstal detect` on its run, as a user meets them: proposals files
 * in, the run folder and the table out; bad input gets an error naming the option or file.
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const bin = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');
const pstal = (args: string[], cwd: string) => spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, PSTAL_TS: '1' } });

/** Proposals around each ground-truth segment, in seconds, for every video of a subset. */
function proposalsOf(data: string, subset: string): object {
  const db = JSON.parse(fs.readFileSync(path.join(data, 'gt_full.json'), 'utf8')).database as Record<string, { subset: string; duration: number; annotations: { label: string; segment: [number, number] }[] }>;
  const results: Record<string, { segment: [number, number]; label?: string }[]> = {};
  for (const [name, v] of Object.entries(db)) {
    if (v.subset !== subset) continue;
    const list: { segment: [number, number]; label?: string }[] = [];
    for (const a of v.annotations) {
      const [s, e] = a.segment;
      const w = e - s;
      list.push({ segment: [s, e], label: a.label }, { segment: [Math.max(0, s - 0.2 * w), e - 0.1 * w] }, { segment: [s + 0.2 * w, Math.min(v.duration, e + 0.3 * w)] });
    }
    list.push({ segment: [0, Math.min(2, v.duration)] });
    results[name] = list;
  }
  return { results };
}

test('pstal train --method tspnet on proposals files, then pstal detect with it; bad input named', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-tspcli-'));
  try {
    let r = pstal(['synth', '--out', 'data', '--videos', '16', '--dim', '16', '--duration-scale', '0.2', '--seed', '4'], dir);
    t.is(r.status, 0, r.stderr);
    const gt = JSON.parse(fs.readFileSync(path.join(dir, 'data', 'gt_full.json'), 'utf8')).database;
    const subsets = [...new Set(Object.values(gt).map((v) => (v as { subset: string }).subset))];
    const trainSubset = subsets.find((s) => /valid|train/i.test(s))!;
    const testSubset = subsets.find((s) => s !== trainSubset)!;
    fs.writeFileSync(path.join(dir, 'ptrain.json'), JSON.stringify(proposalsOf(path.join(dir, 'data'), trainSubset)));
    fs.writeFileSync(path.join(dir, 'ptest.json'), JSON.stringify(proposalsOf(path.join(dir, 'data'), testSubset)));
    const common = ['train', '--method', 'tspnet', '--data', 'data', '--quiet'];
    r = pstal([...common, '--proposals-train', 'ptrain.json', '--proposals-test', 'ptest.json', '--out', 'run', '--iterations', '4', '--test-every', '2', '--batch-size', '4', '--lr', '1e-3'], dir);
    t.is(r.status, 0, r.stderr.slice(-3000));
    t.regex(r.stderr, /tspnet: best checkpoint \(iteration \d\) on the test videos\n.*@0\.1/s);
    for (const f of ['tspnet_best.safetensors', 'tspnet_last.safetensors', 'tspnet_metrics.jsonl', 'tspnet_results.json', 'tspnet_config.json', 'proposals_train.json', 'proposals_test.json'])
      t.true(fs.existsSync(path.join(dir, 'run', f)), f);
    // its learning curves, as HR-Pro's runs have
    t.regex(fs.readFileSync(path.join(dir, 'run', 'metrics.svg'), 'utf8'), /TSPNet: test mAP/);
    const video = fs.readFileSync(path.join(dir, 'data', 'split_test.txt'), 'utf8').split('\n')[0].trim();
    const d = pstal(['detect', '--model', 'run', '--features', `data/features/test/${video}.npy`, '--proposals', 'ptest.json', '--out', 'det.json'], dir);
    t.is(d.status, 0, d.stderr);
    t.true(JSON.parse(fs.readFileSync(path.join(dir, 'det.json'), 'utf8')).results[video].length > 0);
    // the same feature checks as HR-Pro's detect: NaN/Inf and zero rows named with the file
    const { readNpy, writeNpy } = require('../../lib/data/npy') as typeof import('../../lib/data/npy');
    const arr = readNpy(path.join(dir, 'data', 'features', 'test', `${video}.npy`));
    arr.data[3] = NaN;
    writeNpy(path.join(dir, 'nan.npy'), arr.data, arr.shape);
    const nan = pstal(['detect', '--model', 'run', '--features', 'nan.npy', '--proposals', 'ptest.json'], dir);
    t.is(nan.status, 1);
    t.regex(nan.stderr, /nan\.npy.*NaN/);
    const noProps = pstal(['detect', '--model', 'run', '--features', `data/features/test/${video}.npy`], dir);
    t.is(noProps.status, 1);
    t.regex(noProps.stderr, /pass the new video's base proposals/);
    // --proposals is type-checked as the training's files are: a segment of strings is named, not compared as text
    const typed = proposalsOf(path.join(dir, 'data'), testSubset) as { results: Record<string, { segment: unknown[] }[]> };
    typed.results[video][0].segment = ['9', 10];
    fs.writeFileSync(path.join(dir, 'typed.json'), JSON.stringify(typed));
    const strict = pstal(['detect', '--model', 'run', '--features', `data/features/test/${video}.npy`, '--proposals', 'typed.json'], dir);
    t.is(strict.status, 1);
    t.regex(strict.stderr, new RegExp(`typed\\.json: results\\["${video}"\\]\\[0\\]: segment must be \\[start, end\\] in seconds, received \\["9",10\\]`));

    // usage errors: exit 2, naming the options
    r = pstal([...common, '--out', 'x'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /--method tspnet needs --base RUN/);
    r = pstal([...common, '--out', 'x', '--base', 'run', '--proposals-train', 'ptrain.json'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /either --base or --proposals-train/);
    r = pstal([...common, '--out', 'x', '--base', 'run', '--base-stage', '3'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /--base-stage must be 1 or 2/);
    r = pstal(['train', '--method', 'frob', '--data', 'data', '--out', 'x'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /--method must be 'hrpro' or 'tspnet'/);
    // a bad file: exit 1, naming it
    const bad = proposalsOf(path.join(dir, 'data'), trainSubset) as { results: Record<string, unknown[]> };
    delete bad.results[Object.keys(bad.results)[0]];
    fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify(bad));
    r = pstal([...common, '--proposals-train', 'bad.json', '--proposals-test', 'ptest.json', '--out', 'y'], dir);
    t.is(r.status, 1);
    t.regex(r.stderr, /bad\.json: no proposals for 1 video\(s\) of the split/);
    // an HR-Pro base run that is not one
    r = pstal([...common, '--base', 'run', '--out', 'z'], dir);
    t.is(r.status, 1);
    t.regex(r.stderr, /run: no stage-1 checkpoint/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pstal run --method hrpro+tspnet: stage 1, ranking, stage 2, then TSPNet in RUN/tspnet; --resume skips what is done; pstal detect on RUN/tspnet', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-tspchain-'));
  try {
    let r = pstal(['synth', '--out', 'data', '--videos', '16', '--dim', '16', '--duration-scale', '0.2', '--seed', '4'], dir);
    t.is(r.status, 0, r.stderr);
    const chain = ['run', '--method', 'hrpro+tspnet', '--data', 'data', '--out', 'run', '--quiet', '--iterations', '2', '--test-every', '2', '--batch-size', '4', '--epochs', '1',
      '--tspnet-test-every', '2', '--tspnet-batch-size', '4', '--tspnet-lr', '1e-3'];
    r = pstal([...chain, '--tspnet-iterations', '4'], dir);
    t.is(r.status, 0, r.stderr.slice(-3000));
    t.regex(r.stderr, /stage 1: best checkpoint .*stage 2: best checkpoint .*tspnet: base proposals from HR-Pro stage 2 of run -> run[\\/]tspnet\ntspnet: best checkpoint \(iteration \d\) on the test videos\n.*@0\.1/s);
    for (const f of ['stage1_best.safetensors', 'proposals.json', 'stage2_best.safetensors', 'stage2_results.json']) t.true(fs.existsSync(path.join(dir, 'run', f)), f);
    for (const f of ['tspnet_best.safetensors', 'tspnet_results.json', 'tspnet_config.json', 'proposals_train.json', 'proposals_test.json'])
      t.true(fs.existsSync(path.join(dir, 'run', 'tspnet', f)), f);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'tspnet', 'tspnet_config.json'), 'utf8'));
    t.deepEqual(cfg.base, { run: path.join(fs.realpathSync(dir), 'run'), stage: 2 });
    t.is(cfg.tspnet.iterations, 4);
    t.is(cfg.tspnet.lr, 1e-3);
    const results = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'tspnet', 'tspnet_results.json'), 'utf8')).results;
    t.true(Object.values(results).some((l) => (l as unknown[]).length > 0));

    // --resume with more TSPNet iterations: the HR-Pro part is skipped, TSPNet goes on from iteration 4
    const stage2Before = fs.statSync(path.join(dir, 'run', 'stage2_best.safetensors')).mtimeMs;
    r = pstal([...chain, '--tspnet-iterations', '6', '--resume'], dir);
    t.is(r.status, 0, r.stderr.slice(-3000));
    t.regex(r.stderr, /hrpro: done in run \(tspnet\/ holds its base proposals\); going on to TSPNet/);
    t.notRegex(r.stderr, /stage 1:|stage 2:/);
    t.is(fs.statSync(path.join(dir, 'run', 'stage2_best.safetensors')).mtimeMs, stage2Before);
    const lines = fs.readFileSync(path.join(dir, 'run', 'tspnet', 'tspnet_metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).iteration);
    t.deepEqual(lines, [2, 4, 6]);

    // the chain on a new video: the HR-Pro base, then the plug-in (no --proposals needed)
    const video = fs.readFileSync(path.join(dir, 'data', 'split_test.txt'), 'utf8').split('\n')[0].trim();
    const d = pstal(['detect', '--model', 'run/tspnet', '--features', `data/features/test/${video}.npy`, '--out', 'det.json'], dir);
    t.is(d.status, 0, d.stderr);
    t.true(JSON.parse(fs.readFileSync(path.join(dir, 'det.json'), 'utf8')).results[video].length > 0);

    // usage errors name the option
    r = pstal(['run', '--data', 'data', '--out', 'x', '--tspnet-iterations', '3'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /--tspnet-iterations is a --method hrpro\+tspnet option/);
    r = pstal(['run', '--method', 'hrpro+tspnet', '--data', 'data', '--out', 'x', '--tspnet-iterations', '0'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /--tspnet-iterations must be a positive integer, received 0/);
    r = pstal(['run', '--method', 'hrpro+tspnet', '--data', 'data', '--out', 'x', '--base-stage', '3'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /--base-stage must be 1 or 2/);
    r = pstal(['run', '--method', 'tspnet', '--data', 'data', '--out', 'x'], dir);
    t.is(r.status, 2);
    t.regex(r.stderr, /--method must be 'hrpro' or 'hrpro\+tspnet'/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL mid-training, then --resume: the same final weights, points and metrics as an uninterrupted run', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-tspkill-'));
  try {
    let r = pstal(['synth', '--out', 'data', '--videos', '16', '--dim', '16', '--duration-scale', '0.2', '--seed', '6'], dir);
    t.is(r.status, 0, r.stderr);
    const gt = JSON.parse(fs.readFileSync(path.join(dir, 'data', 'gt_full.json'), 'utf8')).database;
    const subsets = [...new Set(Object.values(gt).map((v) => (v as { subset: string }).subset))];
    const trainSubset = subsets.find((s) => /valid|train/i.test(s))!;
    fs.writeFileSync(path.join(dir, 'ptrain.json'), JSON.stringify(proposalsOf(path.join(dir, 'data'), trainSubset)));
    fs.writeFileSync(path.join(dir, 'ptest.json'), JSON.stringify(proposalsOf(path.join(dir, 'data'), subsets.find((s) => s !== trainSubset)!)));
    const args = (out: string) => ['train', '--method', 'tspnet', '--data', 'data', '--quiet', '--proposals-train', 'ptrain.json', '--proposals-test', 'ptest.json', '--out', out,
      '--iterations', '40', '--test-every', '10', '--checkpoint-every', '1', '--update-every', '7', '--batch-size', '4', '--lr', '1e-3', '--seed', '3'];
    r = pstal(args('full'), dir);
    t.is(r.status, 0, r.stderr.slice(-2000));

    // killed once its first test is written (iteration 10 of 40): somewhere in training or a checkpoint write
    const { spawn } = await import('child_process');
    const child = spawn(process.execPath, [bin, ...args('cut')], { cwd: dir, env: { ...process.env, PSTAL_TS: '1' }, stdio: 'ignore' });
    const metricsFile = path.join(dir, 'cut', 'tspnet_metrics.jsonl');
    const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_code, sig) => res(sig)));
    const timer = setInterval(() => {
      if (fs.existsSync(metricsFile) && fs.readFileSync(metricsFile, 'utf8').trim()) child.kill('SIGKILL');
    }, 20);
    const sig = await exited;
    clearInterval(timer);
    t.is(sig, 'SIGKILL', 'the run was killed before it finished');
    r = pstal([...args('cut').filter((a) => a !== '--quiet'), '--resume'], dir);
    t.is(r.status, 0, r.stderr.slice(-2000));
    // it went on from the saved state, not from the start: iteration 10 or later, or 9 when the kill
    // fell between iteration 10's metrics line and its state file (the loop writes them in that order;
    // seen once in CI)
    const from = /resuming from \S+ at iteration (\d+)/.exec(r.stderr);
    t.truthy(from, r.stderr.slice(-2000));
    t.true(Number(from![1]) >= 9 && Number(from![1]) < 40, from![0]);

    const { loadSafetensors } = await import('../../lib/io/safetensors');
    const a = loadSafetensors(path.join(dir, 'full', 'tspnet_last.safetensors'));
    const b = loadSafetensors(path.join(dir, 'cut', 'tspnet_last.safetensors'));
    for (const [k, v] of a.tensors) t.deepEqual(v.data, b.tensors.get(k)!.data, k);
    t.deepEqual(JSON.parse(a.metadata.state).extra.points, JSON.parse(b.metadata.state).extra.points, 'moved points');
    const strip = (f: string) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => { const { elapsed, ...rest } = JSON.parse(l); return rest; });
    t.deepEqual(strip(metricsFile), strip(path.join(dir, 'full', 'tspnet_metrics.jsonl')));
    t.is(fs.readFileSync(path.join(dir, 'cut', 'tspnet_results.json'), 'utf8'), fs.readFileSync(path.join(dir, 'full', 'tspnet_results.json'), 'utf8'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
