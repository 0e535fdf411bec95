/**
 * --resume goes on with the run it resumes, and nothing a command did not make is overwritten
 * without a word: a resume with another seed, learning rate, batch size, test interval, dataset
 * config or data is refused naming each field (recorded and given), for HR-Pro stage 1, stage 2,
 * TSPNet and `pstal run` (which chains them); a longer schedule is accepted and recorded where it
 * took effect, and gives the weights of a run trained that long from the start; an imported stage
 * is finished (the run goes on from it); a fresh start over a run is refused unless --force; and
 * `pstal import --force` removes what was trained on the replaced checkpoint. Tiny synthetic data
 * (8 videos, D = 16), one thread, the compiled CLI.
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadSafetensors } from '../../lib/io/safetensors';
import { compareRunConfigs } from '../../lib/train/resume';
import { ensureCompiled, BIN } from '../helpers/killrun';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'torch');
let root: string;

test.before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-resume-'));
  await synthesizeDataset({ out: path.join(root, 'data'), dim: 16, seed: 4, videos: 8, knobs: { durationScale: 0.2 } });
  await synthesizeDataset({ out: path.join(root, 'other'), dim: 16, seed: 5, videos: 8, knobs: { durationScale: 0.2 } });
  fs.cpSync(path.join(root, 'data'), path.join(root, 'moved'), { recursive: true });
  // thumos14 with one stage-1 hyper-parameter changed
  const yaml = fs.readFileSync(path.resolve(__dirname, '..', '..', 'configs', 'thumos14.yaml'), 'utf8');
  const changed = yaml.replace(/^(\s*actThreshold:\s*)([0-9.]+)/m, (_m, k: string, v: string) => `${k}${Number(v) + 0.05}`);
  if (changed === yaml) throw new Error('configs/thumos14.yaml: no actThreshold to change');
  fs.writeFileSync(path.join(root, 'changed.yaml'), changed);
  ensureCompiled();
});
test.after.always(() => fs.rmSync(root, { recursive: true, force: true }));

const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, PSTAL_NUM_THREADS: '1', PSTAL_COMPILED: '1' };
  delete e.PSTAL_TS;
  return e;
};
const pstal = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: root, encoding: 'utf8', env: env() });
const json = (...p: string[]) => JSON.parse(fs.readFileSync(path.join(root, ...p), 'utf8'));
const bytes = (...p: string[]) => fs.readFileSync(path.join(root, ...p));
const weights = (...p: string[]) => loadSafetensors(path.join(root, ...p)).tensors;

/** A refused resume: exit 1, each field named with its recorded and given value, nothing written. */
function refused(t: import('ava').ExecutionContext, r: ReturnType<typeof pstal>, fields: [string, string, string][], untouched: string[]): void {
  t.is(r.status, 1, r.stderr.slice(-2000));
  t.regex(r.stderr, /cannot resume: .* records other settings or inputs than the ones given/);
  for (const [field, was, now] of fields) t.true(r.stderr.includes(`  ${field}: recorded ${was}, given ${now}`), `${field}: ${was} -> ${now} in\n${r.stderr}`);
  for (const f of untouched) t.true(fs.existsSync(path.join(root, f)), f);
}

/** Without --quiet: the training's messages (resuming, changes) are printed. */
const loud = (args: string[]) => args.filter((a) => a !== '--quiet');
const STAGE1 = ['train', '--stage', '1', '--data', 'data', '--quiet', '--iterations', '2', '--test-every', '2', '--batch-size', '2', '--lr', '1e-3'];

test.serial('stage 1: another seed, lr, batch size, test interval, config or data is refused naming each field; the folder is left as it was', (t) => {
  let r = pstal(...STAGE1, '--out', 's1');
  t.is(r.status, 0, r.stderr);
  const state = bytes('s1', 'stage1_last.safetensors');
  const config = bytes('s1', 'config.json');
  const dataset = bytes('s1', 'dataset.json');
  t.like(json('s1', 'config.json'), { compute: { device: 'cpu', precision: 'fp32' }, inputs: { data: { folder: path.join(fs.realpathSync(root), 'data') }, config: { name: 'THUMOS14' } } });
  t.is(json('s1', 'config.json').changes, undefined);

  r = pstal(...STAGE1, '--out', 's1', '--resume', '--seed', '7');
  refused(t, r, [['stage1.seed', '0', '7']], []);
  r = pstal(...STAGE1, '--out', 's1', '--resume', '--lr', '2e-3', '--batch-size', '4', '--test-every', '1');
  refused(t, r, [['stage1.lr', '0.001', '0.002'], ['stage1.batchSize', '2', '4'], ['stage1.testEvery', '2', '1']], []);
  // another dataset config: refused before the features are read, naming its fields
  r = pstal(...STAGE1, '--out', 's1', '--resume', '--config', 'changed.yaml');
  refused(t, r, [['inputs.config.stage1.actThreshold', '0.1', '0.15000000000000002']], []);
  // other data: refused before its features are read, naming the annotation files that differ
  r = pstal(...STAGE1.map((a) => (a === 'data' ? 'other' : a)), '--out', 's1', '--resume');
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /data: cannot resume: .*dataset\.json records other settings or inputs/);
  t.regex(r.stderr, /inputs\.data\.annotations\.gt_full\.json: recorded "sha256:[0-9a-f]{16}", given "sha256:[0-9a-f]{16}"/);
  t.regex(r.stderr, /inputs\.data\.features\.digest: recorded/);
  // none of them wrote anything
  t.deepEqual(bytes('s1', 'stage1_last.safetensors'), state);
  t.deepEqual(bytes('s1', 'config.json'), config);
  t.deepEqual(bytes('s1', 'dataset.json'), dataset);

  // the same data in another folder: accepted, recorded as a change
  r = pstal(...loud(STAGE1.map((a) => (a === 'data' ? 'moved' : a))), '--out', 's1', '--resume', '--no-ranking');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /stage 1: from iteration 2 on: inputs\.data\.folder ".*data" -> ".*moved"/);
  t.like(json('s1', 'config.json').changes[0], { step: 2, where: 'iteration 2', field: 'inputs.data.folder' });
  t.deepEqual(bytes('s1', 'stage1_last.safetensors'), state);
});

test.serial('stage 1: more iterations are accepted and recorded at the iteration they took effect; the weights are those of the longer run; fewer are refused', (t) => {
  let r = pstal(...STAGE1, '--out', 'ext', '--no-ranking');
  t.is(r.status, 0, r.stderr);
  r = pstal(...loud(STAGE1), '--out', 'ext', '--no-ranking', '--resume', '--iterations', '4');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /stage 1: from iteration 2 on: stage1\.iterations 2 -> 4/);
  const c = json('ext', 'config.json');
  t.is(c.stage1.iterations, 4);
  t.deepEqual(c.changes, [{ step: 2, where: 'iteration 2', field: 'stage1.iterations', from: 2, to: 4 }]);
  // a run of 4 iterations from the start: the same weights and optimizer state
  r = pstal(...STAGE1, '--out', 'four', '--no-ranking', '--iterations', '4');
  t.is(r.status, 0, r.stderr);
  const a = weights('ext', 'stage1_last.safetensors');
  const b = weights('four', 'stage1_last.safetensors');
  t.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a) t.deepEqual(v.data, b.get(k)!.data, k);
  // back to 3: refused
  r = pstal(...STAGE1, '--out', 'ext', '--no-ranking', '--resume', '--iterations', '3');
  refused(t, r, [['stage1.iterations', '4', '3']], []);
  t.regex(r.stderr, /a schedule may be lengthened on resume, not shortened/);
});

test.serial('stage 2 and TSPNet: another learning rate, seed or base is refused; more epochs / iterations accepted; stage 2 on another ranking refused', (t) => {
  let r = pstal('run', '--data', 'data', '--out', 'r2', '--quiet', '--iterations', '2', '--test-every', '2', '--batch-size', '2', '--epochs', '1', '--batch-size2', '2');
  t.is(r.status, 0, r.stderr);
  const S2 = ['train', '--stage', '2', '--data', 'data', '--out', 'r2', '--quiet', '--epochs', '1', '--batch-size', '2', '--resume'];
  r = pstal(...S2, '--lr', '1e-3');
  refused(t, r, [['stage2.lr', '0.00005', '0.001']], []);
  r = pstal(...S2.map((a) => (a === '1' ? '2' : a)));
  t.is(r.status, 0, r.stderr);
  t.deepEqual(json('r2', 'stage2_config.json').changes, [{ step: 2, where: 'epoch 1', field: 'stage2.epochs', from: 1, to: 2 }]);
  // the ranking stage 2 learnt from is recorded: another one (here: the same JSON, other bytes) is refused
  fs.appendFileSync(path.join(root, 'r2', 'proposals.json'), '\n');
  r = pstal(...S2.map((a) => (a === '1' ? '2' : a)));
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /inputs\.proposals: recorded "sha256:[0-9a-f]{16}", given "sha256:[0-9a-f]{16}"/);

  const TSP = ['train', '--method', 'tspnet', '--data', 'data', '--base', 'r2', '--out', 't1', '--quiet', '--iterations', '2', '--test-every', '2', '--batch-size', '4', '--lr', '1e-3'];
  r = pstal(...TSP);
  t.is(r.status, 0, r.stderr);
  r = pstal(...TSP, '--resume', '--seed', '7', '--lr', '2e-3');
  refused(t, r, [['tspnet.seed', '0', '7'], ['tspnet.lr', '0.001', '0.002']], []);
  r = pstal(...TSP, '--resume', '--base-stage', '2');
  refused(t, r, [['base.stage', '1', '2']], []);
  r = pstal(...TSP, '--resume', '--test-every', '1', '--batch-size', '2');
  refused(t, r, [['tspnet.testEvery', '2', '1'], ['tspnet.batchSize', '4', '2']], []);
  r = pstal(...TSP, '--resume', '--iterations', '4');
  t.is(r.status, 0, r.stderr);
  t.deepEqual(json('t1', 'tspnet_config.json').changes, [{ step: 2, where: 'iteration 2', field: 'tspnet.iterations', from: 2, to: 4 }]);
  // a fresh start over it: refused unless --force
  r = pstal(...TSP);
  t.is(r.status, 1);
  t.regex(r.stderr, /t1 holds TSPNet trained here \(tspnet_best\.safetensors, tspnet_last\.safetensors\)\. --resume goes on with it; --force starts afresh/);
});

const RUN = ['run', '--method', 'hrpro+tspnet', '--data', 'data', '--out', 'chain', '--quiet', '--iterations', '2', '--test-every', '2', '--batch-size', '2', '--epochs', '1', '--batch-size2', '2',
  '--tspnet-iterations', '2', '--tspnet-test-every', '2', '--tspnet-batch-size', '4', '--tspnet-lr', '1e-3'];

test.serial('pstal run (hrpro+tspnet): a resume with another seed or stage-2 lr is refused; more stage-1 iterations go on through every part; a fresh run over it needs --force', (t) => {
  let r = pstal(...RUN);
  t.is(r.status, 0, r.stderr);
  const files = ['stage1_last.safetensors', 'stage2_last.safetensors', 'proposals.json', path.join('tspnet', 'tspnet_last.safetensors')];
  const before = files.map((f) => bytes('chain', f));
  const firstWeights = weights('chain', 'stage2_last.safetensors');
  r = pstal(...RUN, '--resume', '--seed', '7');
  refused(t, r, [['stage1.seed', '0', '7']], []);
  r = pstal(...RUN, '--resume', '--lr2', '1e-3');
  refused(t, r, [['stage2.lr', '0.00005', '0.001']], []);
  r = pstal(...RUN.map((a) => (a === 'data' ? 'other' : a)), '--resume');
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /inputs\.data\.annotations\.gt_full\.json: recorded "sha256:[0-9a-f]{16}", given "sha256:[0-9a-f]{16}"/);
  files.forEach((f, i) => t.deepEqual(bytes('chain', f), before[i], f));

  // a longer stage 1: it goes on from iteration 2, ranks again, stage 2 and TSPNet follow. A stage 2
  // or TSPNet state trained on another ranking or base proposals than the new ones is stale: made
  // so here by changing the digests they recorded (a longer stage 1 whose best checkpoint moves
  // does it for real)
  const edit = (file: string, f: (c: { inputs: { proposals: unknown } }) => void) => {
    const c = json('chain', file);
    f(c);
    fs.writeFileSync(path.join(root, 'chain', file), JSON.stringify(c));
  };
  edit('stage2_config.json', (c) => (c.inputs.proposals = 'sha256:0000000000000000'));
  edit(path.join('tspnet', 'tspnet_config.json'), (c) => ((c.inputs.proposals as { train: string }).train = 'sha256:0000000000000000'));
  r = pstal(...loud(RUN), '--resume', '--iterations', '4');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /stage 2: removed stage2_last\.safetensors, stage2_best\.safetensors, .*: trained on another stage-1 ranking than proposals\.json \(sha256:0000000000000000, now sha256:[0-9a-f]{16}\); stage 2 starts again/);
  t.regex(r.stderr, /tspnet: removed tspnet_last\.safetensors, .*: trained on other base proposals than .*tspnet's \(the HR-Pro run went on\); TSPNet starts again/);
  t.notRegex(r.stderr, /stage 2: resuming|tspnet: resuming/);
  t.regex(r.stderr, /stage 1: from iteration 2 on: stage1\.iterations 2 -> 4/);
  t.regex(r.stderr, /stage 1: resuming from .* at iteration 2/);
  t.regex(r.stderr, /tspnet: base proposals from HR-Pro stage 2/);
  t.like(json('chain', 'config.json').changes[0], { step: 2, field: 'stage1.iterations', from: 2, to: 4 });
  const lines = fs.readFileSync(path.join(root, 'chain', 'stage1_metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).iteration);
  t.deepEqual(lines, [2, 4]);
  // stage 2 and TSPNet record what they learnt from: this ranking, these base proposals
  t.regex(json('chain', 'stage2_config.json').inputs.proposals, /^sha256:[0-9a-f]{16}$/);
  t.deepEqual(Object.keys(json('chain', 'tspnet', 'tspnet_config.json').inputs.proposals), ['train', 'test']);

  // without --resume: refused, naming what is there; --force starts afresh
  r = pstal(...RUN);
  t.is(r.status, 1);
  t.regex(r.stderr, /chain holds stage 1 trained here \(stage1_best\.safetensors, stage1_last\.safetensors\); stage 2 trained here .*; TSPNet trained here .* in tspnet\/\. --resume goes on with it; --force starts afresh/);
  r = pstal(...RUN, '--force');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /--force: removed stage 1 trained here .*stage1_last\.safetensors/);
  t.deepEqual(fs.readFileSync(path.join(root, 'chain', 'stage1_metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).iteration), [2]);
  t.deepEqual(bytes('chain', 'proposals.json'), before[2], '--force gives the first run\'s ranking again');
  for (const [k, v] of weights('chain', 'stage2_last.safetensors')) t.deepEqual(v.data, firstWeights.get(k)!.data, `--force gives the first run's stage 2 again: ${k}`);
  r = pstal(...RUN, '--force', '--resume');
  t.is(r.status, 2);
  t.regex(r.stderr, /--force starts the run folder afresh; it does not go with --resume/);
});

test.serial('an imported stage 1 is finished: pstal run --resume ranks from it and trains stage 2, never stage 1; import --force removes what was trained on the old one', (t) => {
  let r = pstal('import', '--from', path.join(FIX, 'stage1.pt'), '--stage', '1', '--config', 'thumos14', '--dim', '16', '--out', 'imp');
  t.is(r.status, 0, r.stderr);
  const imported = bytes('imp', 'stage1_best.safetensors');
  const args = ['run', '--data', 'data', '--out', 'imp', '--quiet', '--epochs', '1', '--batch-size2', '2'];
  // without --resume: refused, naming the imported stage
  r = pstal(...args);
  t.is(r.status, 1);
  t.regex(r.stderr, /imp holds stage 1 imported from .*stage1\.pt\. --resume goes on with it; --force starts afresh/);
  r = pstal(...args, '--resume');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /stage 1: imported into imp \(from .*stage1\.pt\): a finished stage; the ranking and stage 2 go on from it/);
  t.notRegex(r.stderr, /stage 1: \d+ training and/);
  t.deepEqual(bytes('imp', 'stage1_best.safetensors'), imported);
  t.false(fs.existsSync(path.join(root, 'imp', 'stage1_last.safetensors')));
  for (const f of ['proposals.json', 'stage2_best.safetensors', 'stage2_last.safetensors']) t.true(fs.existsSync(path.join(root, 'imp', f)), f);
  t.truthy(json('imp', 'config.json').imported);
  // again: stage 1 and the ranking stay, stage 2 is done
  const proposals = bytes('imp', 'proposals.json');
  r = pstal(...args, '--resume');
  t.is(r.status, 0, r.stderr);
  t.deepEqual(bytes('imp', 'proposals.json'), proposals);
  t.deepEqual(bytes('imp', 'stage1_best.safetensors'), imported);
  // pstal train --stage 1 --resume: not trained either
  r = pstal('train', '--stage', '1', '--data', 'data', '--out', 'imp', '--quiet', '--resume', '--no-ranking');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /stage 1: imported into imp .*a finished stage, not trained here/);
  t.deepEqual(bytes('imp', 'stage1_best.safetensors'), imported);

  // replacing stage 1: the stage 2 trained on its ranking goes too, and the output says so
  r = pstal('import', '--from', path.join(FIX, 'stage1.pt'), '--stage', '1', '--config', 'thumos14', '--dim', '16', '--out', 'imp', '--force');
  t.is(r.status, 0, r.stderr);
  const removed = /removed \(derived from the replaced checkpoint\): (.*)/.exec(r.stderr)?.[1].split(', ').map((f) => path.basename(f)) ?? [];
  for (const f of ['proposals.json', 'stage2_best.safetensors', 'stage2_last.safetensors', 'stage2_config.json']) t.true(removed.includes(f), `${f} in ${r.stderr}`);
  for (const f of ['proposals.json', 'stage2_best.safetensors', 'stage2_last.safetensors', 'stage2_config.json']) t.false(fs.existsSync(path.join(root, 'imp', f)), f);
});

test('what a resume may change: the device, a moved folder, a longer schedule; not the precision', (t) => {
  const rec = { stage1: { iterations: 2, lr: 1e-3 }, compute: { device: 'cpu', precision: 'fp32' }, inputs: { data: { folder: '/a', features: { digest: 'x' } } } };
  const c = compareRunConfigs(rec, { ...rec, compute: { device: 'cuda', precision: 'fp32' }, inputs: { data: { folder: '/b', features: { digest: 'x' } } }, stage1: { iterations: 5, lr: 1e-3 } }, { length: 'stage1.iterations' });
  t.deepEqual(c.refused, []);
  t.deepEqual(c.accepted.map((d) => d.field).sort(), ['compute.device', 'inputs.data.folder', 'stage1.iterations']);
  const p = compareRunConfigs(rec, { ...rec, compute: { device: 'cpu', precision: 'bf16' } });
  t.deepEqual(p.refused, [{ field: 'compute.precision', recorded: 'fp32', given: 'bf16' }]);
  // a run of an older version recorded no inputs or compute: not compared, said so
  const old = compareRunConfigs({ stage1: rec.stage1 }, rec);
  t.deepEqual(old, { refused: [], accepted: [], unchecked: ['inputs.data', 'compute'] });
});
