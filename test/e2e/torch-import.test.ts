/**
 * PyTorch checkpoint interop: `pstal import` and `pstal test`.
 *
 * The fixtures (test/fixtures/torch/, made by scripts/make-torch-checkpoint-fixture.py with torch's
 * own torch.save) are HR-Pro S_Model / I_Model state dicts under the reference's names, D = 16,
 * C = 20, with a transposed view, two views of one storage, a strided slice with a storage offset,
 * float64, float16 and bfloat16 tensors, and a wrapped state dict ({'model': ...}); beside them the
 * values every tensor must import to (torch's `.float().contiguous()`), which must match bit for
 * bit, through the reader, the library import and the CLI. Errors must name the file (and the
 * tensor where one is at fault). `pstal test` must print exactly the table the library's
 * evaluation returns, and stage 1's equals the training pipeline's own final test pass.
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readTorchCheckpoint } from '../../lib/io/torch';
import { loadSafetensors, StoredTensor } from '../../lib/io/safetensors';
import { importHrPro } from '../../lib/models/hrpro/import_checkpoint';
import { evaluateRun } from '../../lib/models/hrpro/evaluate_run';
import { loadHrPro } from '../../lib/models/hrpro/detect';
import { trainStage1 } from '../../lib/models/hrpro/train_stage1';
import { finishStage1 } from '../../lib/models/hrpro/pipeline';
import { stage1ConfigFrom } from '../../lib/models/hrpro/config';
import { stageContext } from '../../lib/models/hrpro/run';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset } from '../../lib/data';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'torch');
const bin = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');
const pstal = (args: string[], cwd: string) => spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, PSTAL_TS: '1' } });

let tmp: string;
test.before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-import-'));
});
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

const bits = (t: StoredTensor): Buffer => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** Every expected tensor present with the same shape and the same float32 bits, and nothing else. */
function sameTensors(t: import('ava').ExecutionContext, got: Map<string, StoredTensor>, expectedFile: string): void {
  const want = loadSafetensors(path.join(FIX, expectedFile)).tensors;
  t.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, w] of want) {
    const g = got.get(k)!;
    t.deepEqual(g.shape, w.shape, k);
    t.true(bits(g).equals(bits(w)), `${k}: values differ`);
  }
}

// ---- the reader ---------------------------------------------------------------------------

test('readTorchCheckpoint: every tensor of torch.save state dicts, bit for bit (strides, offsets, shared storages, dtypes)', (t) => {
  const s1 = readTorchCheckpoint(path.join(FIX, 'stage1.pt'));
  sameTensors(t, s1.tensors, 'stage1_expected.safetensors');
  t.is(s1.wrapper, '');
  t.is(s1.byteorder, 'little');
  t.is(s1.tensors.get('encoder.RAB.1.linear1.weight')!.dtype, 'float64');
  t.is(s1.tensors.get('encoder.RAB.0.norm1.bias')!.dtype, 'float16');
  t.is(s1.tensors.get('encoder.RAB.0.self_atten.out_proj.weight')!.dtype, 'float32');
  // names in the checkpoint's (OrderedDict) order
  t.is([...s1.tensors.keys()][0], 'memory.proto_vectors');
  t.deepEqual(s1.tensors.get('memory.proto_vectors')!.shape, [20, 1, 16]);

  const s2 = readTorchCheckpoint(path.join(FIX, 'stage2.pt'));
  t.is(s2.wrapper, 'model');
  t.is(s2.tensors.get('bcr.prop_fusion.0.bias')!.dtype, 'bfloat16');
  sameTensors(t, s2.tensors, 'stage2_expected.safetensors');
});

// ---- library import ---------------------------------------------------------------------------

test('importHrPro: a run folder the loaders read, weights bit for bit, shapes from the tensors', (t) => {
  const run = path.join(tmp, 'lib-run');
  const r1 = importHrPro({ from: path.join(FIX, 'stage1.pt'), stage: 1, out: run, config: 'thumos14', featureDim: 16 });
  t.is(r1.featureDim, 16);
  t.is(r1.numClasses, 20);
  t.deepEqual(r1.converted, { 'encoder.RAB.0.norm1.bias': 'float16', 'encoder.RAB.1.linear1.weight': 'float64' });
  sameTensors(t, loadSafetensors(path.join(run, 'stage1_best.safetensors')).tensors, 'stage1_expected.safetensors');
  const c1 = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  t.is(c1.featureDim, 16);
  t.is(c1.classNames.length, 20);
  t.is(c1.stage1.model.prototypeReshape, true);
  t.is(c1.stage1.model.rab.feedForward, 32);
  t.is(c1.stage1.model.layers, 2);

  // stage 2 takes D from the run's stage 1 (no --dim needed)
  const r2 = importHrPro({ from: path.join(FIX, 'stage2.pt'), stage: 2, out: run, config: 'thumos14' });
  t.is(r2.wrapper, 'model');
  sameTensors(t, loadSafetensors(path.join(run, 'stage2_best.safetensors')).tensors, 'stage2_expected.safetensors');

  const model = loadHrPro(run);
  try {
    t.is(model.featureDim, 16);
    t.truthy(model.stage2);
    t.is(model.stage1.options.rab.feedForward, 32);
    t.true(model.stage1.options.prototypeReshape);
    // the model holds the imported values
    const w = model.stage1.stateDict().get('encoder.RAB.0.self_atten.out_proj.weight')!.toArray();
    const want = loadSafetensors(path.join(FIX, 'stage1_expected.safetensors')).tensors.get('encoder.RAB.0.self_atten.out_proj.weight')!;
    t.true(Buffer.from(w.buffer, w.byteOffset, w.byteLength).equals(bits(want)));
  } finally {
    model.dispose();
  }

  // a safetensors export of the same state dict imports the same
  const viaSt = path.join(tmp, 'lib-run-st');
  importHrPro({ from: path.join(FIX, 'stage1_expected.safetensors'), stage: 1, out: viaSt, featureDim: 16 });
  sameTensors(t, loadSafetensors(path.join(viaSt, 'stage1_best.safetensors')).tensors, 'stage1_expected.safetensors');

  // an existing checkpoint is kept unless forced
  t.throws(() => importHrPro({ from: path.join(FIX, 'stage2.pt'), stage: 2, out: run }), { message: /stage2_best\.safetensors exists; pass force/ });
  t.notThrows(() => importHrPro({ from: path.join(FIX, 'stage2.pt'), stage: 2, out: run, force: true }));
});

// ---- the CLI ----------------------------------------------------------------------------------

test('pstal import: both stages into one run, bit for bit', (t) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'cli-'));
  let r = pstal(['import', '--from', path.join(FIX, 'stage1.pt'), '--stage', '1', '--config', 'thumos14', '--dim', '16', '--out', 'run'], dir);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /stage 1: 40 tensors .*D = 16, 20 classes; converted to float32: encoder\.RAB\.0\.norm1\.bias \(float16\)/);
  r = pstal(['import', '--from', path.join(FIX, 'stage2.pt'), '--stage', '2', '--out', 'run'], dir);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /under 'model'/);
  sameTensors(t, loadSafetensors(path.join(dir, 'run', 'stage1_best.safetensors')).tensors, 'stage1_expected.safetensors');
  sameTensors(t, loadSafetensors(path.join(dir, 'run', 'stage2_best.safetensors')).tensors, 'stage2_expected.safetensors');
  r = pstal(['import', '--help'], dir);
  t.is(r.status, 0);
  t.regex(r.stdout, /examples:\n  pstal import --from/);
  r = pstal(['test', '--help'], dir);
  t.is(r.status, 0);
  t.regex(r.stdout, /examples:\n  pstal test --model/);
});

test('pstal import: errors name the file (and the tensor at fault), exit 1, no stack trace', (t) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'err-'));
  const imp = (file: string, ...extra: string[]) => pstal(['import', '--from', file, '--stage', extra.includes('2') ? '2' : '1', '--dim', '16', '--out', 'run', ...extra.filter((x) => x !== '2')], dir);
  const check = (r: ReturnType<typeof pstal>, file: string, re: RegExp) => {
    t.is(r.status, 1, r.stderr);
    t.true(r.stderr.includes(file), `the message names ${file}: ${r.stderr}`);
    t.regex(r.stderr, re);
    t.notRegex(r.stderr, /\n\s+at /);
  };
  // a truncated archive
  const full = fs.readFileSync(path.join(FIX, 'stage1.pt'));
  const truncated = path.join(dir, 'truncated.pt');
  fs.writeFileSync(truncated, full.subarray(0, Math.floor(full.length * 0.6)));
  check(imp(truncated), truncated, /damaged or truncated zip archive/);
  // not a checkpoint at all
  const text = path.join(dir, 'notes.pkl');
  fs.writeFileSync(text, 'these are not the weights you are looking for\n');
  check(imp(text), text, /not a PyTorch checkpoint/);
  // the legacy format: what to do
  const legacy = path.join(FIX, 'stage2_legacy.pt');
  check(imp(legacy, '2'), legacy, /legacy torch\.save format.*re-save it with torch >= 1\.6/);
  // a feature width the user did not expect
  const s1 = path.join(FIX, 'stage1.pt');
  check(pstal(['import', '--from', s1, '--stage', '1', '--dim', '32', '--out', 'run'], dir), s1, /tensor 'classifier\.1\.weight' is \[21, 16, 1\], so the features are D = 16 wide, but --dim is 32/);
  check(pstal(['import', '--from', s1, '--stage', '1', '--out', 'run'], dir), s1, /D = 16 wide, but config thumos14 .* has featureDim 2048 \(give --dim 16/);
  // a class count the config does not have
  const yaml = fs.readFileSync(path.resolve(__dirname, '..', '..', 'configs', 'thumos14.yaml'), 'utf8').replace(/classNames: \[[^\]]*\]/s, 'classNames: [a, b, c, d, e]');
  fs.writeFileSync(path.join(dir, 'five.yaml'), yaml);
  check(pstal(['import', '--from', s1, '--stage', '1', '--dim', '16', '--config', 'five.yaml', '--out', 'run'], dir), s1, /tensor 'classifier\.1\.weight' is \[21, 16, 1\]: 20 classes \+ background, but config five .* names 5 classes/);
  // a stage-1 checkpoint given as stage 2
  check(imp(s1, '2'), s1, /no tensor 'bcr\.prop_fusion\.0\.weight'.*I_Model/);
  // a missing and an unknown parameter: both listed
  const missing = path.join(FIX, 'stage2_missing.pt');
  check(imp(missing, '2'), missing, /missing from the checkpoint: bcr\.end_reg_conv\.2\.bias\n\s+not in the model: bcr\.extra\.weight/);
  t.false(fs.existsSync(path.join(dir, 'run', 'stage2_best.safetensors')), 'nothing written on error');
});

// ---- pstal test -----------------------------------------------------------------------------

test('pstal test: the table the library evaluation returns; stage 1 as the pipeline tested it; stage 2 from proposals.json or stage 1', async (t) => {
  const D = 16;
  const data = path.join(tmp, 'data');
  const run = path.join(tmp, 'test-run');
  await synthesizeDataset({ out: data, dim: D, seed: 3, videos: 24, knobs: { durationScale: 0.3, noiseStd: 0.1, sceneStrength: 0, latentNoiseStrength: 0, contextStrength: 0, styleStrength: 0, mixIn: 0, classCorrelation: 0 } });
  const ds = loadDataset(data, loadConfig('thumos14', { featureDim: D }));
  // a briefly trained stage 1 (so the numbers are not all zero), its final test pass and proposals.json
  const cfg = stage1ConfigFrom(ds.config, { iterations: 30, testEvery: 30, seed: 1, lr: 3e-3, batchSize: 4 });
  const ctx = stageContext(ds, { out: run, quiet: true });
  const r1 = await trainStage1(ctx, cfg);
  const fin = finishStage1(ctx, cfg, r1.model);
  r1.model.dispose();
  // stage 2: the imported fixture (D = 16)
  importHrPro({ from: path.join(FIX, 'stage2.pt'), stage: 2, out: run });

  const lib1 = evaluateRun({ run, dataset: ds, stage: 1 });
  t.is(lib1.table, fin.table, 'evaluateRun reproduces the pipeline\'s test pass of the best checkpoint');
  t.true(lib1.evaluation.map[0] > 0, `a non-trivial table: ${lib1.table}`);
  const out = path.join(tmp, 's1.json');
  let r = pstal(['test', '--model', run, '--data', data, '--stage', '1', '--out-results', out], tmp);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), lib1.table);
  t.deepEqual(JSON.parse(fs.readFileSync(out, 'utf8')).results, JSON.parse(JSON.stringify(lib1.results)));

  const lib2 = evaluateRun({ run, dataset: ds });
  t.is(lib2.stage, 2);
  t.is(lib2.proposals, 'proposals.json');
  r = pstal(['test', '--model', run, '--data', data], tmp);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /proposals from .*proposals\.json/);
  t.is(r.stdout.trim(), lib2.table);

  // without proposals.json: the stage-1 checkpoint's test proposals, the very ones finishStage1 wrote
  fs.renameSync(path.join(run, 'proposals.json'), path.join(run, 'proposals.json.bak'));
  const lib2b = evaluateRun({ run, dataset: ds, stage: 2 });
  t.is(lib2b.proposals, 'stage-1 checkpoint');
  t.is(lib2b.table, lib2.table);
  r = pstal(['test', '--model', run, '--data', data, '--stage', '2'], tmp);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /proposals from the stage-1 checkpoint/);
  t.is(r.stdout.trim(), lib2.table);

  // a run with stage 2 and proposals.json but no stage-1 checkpoint
  fs.renameSync(path.join(run, 'proposals.json.bak'), path.join(run, 'proposals.json'));
  fs.renameSync(path.join(run, 'stage1_best.safetensors'), path.join(run, 'stage1_best.safetensors.bak'));
  t.is(evaluateRun({ run, dataset: ds }).table, lib2.table);
  t.throws(() => evaluateRun({ run, dataset: ds, stage: 1 }), { message: /test-run: no stage-1 checkpoint \(stage1_best\.safetensors\)/ });
  fs.renameSync(path.join(run, 'stage1_best.safetensors.bak'), path.join(run, 'stage1_best.safetensors'));

  // errors name the run's file
  r = pstal(['test', '--model', run, '--data', data, '--config', 'gtea'], tmp);
  t.is(r.status, 1);
  t.regex(r.stderr, /config\.json: the run's 20 classes .* are not the dataset's/);
  r = pstal(['test', '--model', path.join(tmp, 'nowhere'), '--data', data], tmp);
  t.is(r.status, 1);
  t.regex(r.stderr, /nowhere: no run here/);
});
