/**
 * Limits and hostile inputs: one table of limits (lib/util/limits.ts) whatever the route (options,
 * YAML configs, the data, `pstal synth`), checked before any work; torch pickles whose rebuild
 * arguments are not what torch.save writes; non-finite weights; ambiguous containers (a zip entry
 * given twice, a .npy header key given twice, safetensors tensors over the same bytes); messages
 * naming the file and field, shared by `pstal check` and `pstal run`; environment variables and
 * options that would be ignored; a lock naming a live process that is not its owner. Each test
 * failed before its fix. Tiny synthetic data (D = 16), one thread.
 */
import test from 'ava';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset } from '../../lib/data';
import { readNpy, readNpyHeader, writeNpy } from '../../lib/data/npy';
import { parseTiou } from '../../lib/eval/detection';
import { readTorchCheckpoint } from '../../lib/io/torch';
import { loadSafetensors, saveSafetensors } from '../../lib/io/safetensors';
import { lockRunFolder, processStartToken, FolderLockedError, LOCK_FILE } from '../../lib/util/lock';
import { LIMITS } from '../../lib/util/limits';
import { parseArgs, CliError } from '../../lib/cli/args';
import { RUN_OPTIONS } from '../../lib/cli/run';
import { checkNumericOptions } from '../../lib/cli/training';
import { ensureCompiled, BIN } from '../helpers/killrun';
import { fuzzWithWatchdog, npyBytes, PickledTensor, safetensorsBytes, torchArchive } from '../helpers/fuzz';

const D = 16;
let root: string;
let data: string;

test.before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-limits-'));
  data = path.join(root, 'data');
  await synthesizeDataset({ out: data, dim: D, seed: 4, videos: 12, knobs: { durationScale: 0.2 } });
});
test.after.always(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const cliEnv = (extra: Record<string, string> = {}) => {
  const e: NodeJS.ProcessEnv = { ...process.env, PSTAL_NUM_THREADS: '1', PSTAL_COMPILED: '1', ...extra };
  delete e.PSTAL_TS;
  return e;
};
const pstal = (args: string[], env: Record<string, string> = {}, timeout = 120000) =>
  (ensureCompiled(), spawnSync)(process.execPath, [BIN, ...args], { cwd: root, encoding: 'utf8', env: cliEnv(env), timeout });
const write = (name: string, bytes: Buffer | string): string => {
  const f = path.join(root, name);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, bytes);
  return f;
};
const config = (name: string, edit: (yaml: string) => string): string => {
  const base = fs.readFileSync(path.join(__dirname, '..', '..', 'configs', 'thumos14.yaml'), 'utf8');
  const text = edit(base);
  if (text === base) throw new Error(`${name}: the edit changed nothing`);
  return write(name, text);
};
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---- one table of limits, every route ---------------------------------------------------------------

test('one table of limits: --tiou, training options and config fields beyond LIMITS are refused naming the option or field', (t) => {
  // `--tiou 0.1:0.7:1e-9` made 6e8 thresholds and killed V8; config lists were already capped at 1,000
  const r = pstal(['eval', '--gt', path.join(data, 'gt_full.json'), '--pred', 'none.json', '--subset', 'Test', '--tiou', '0.1:0.7:1e-9'], {}, 60000);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /pstal eval: --tiou: tIoU spec '0\.1:0\.7:1e-9' gives 600000001 thresholds; at most 1000 are allowed/);
  t.throws(() => parseTiou(Array.from({ length: 1001 }, () => '0.5').join(',')), { message: /lists 1001 thresholds; at most 1000/ });
  t.is(parseTiou('0.1:0.7:0.1').length, 7);

  const parse = (...argv: string[]) => parseArgs('run', ['--data', 'd', '--out', 'o', ...argv], RUN_OPTIONS)!;
  for (const [argv, msg] of [
    [['--batch-size', '100000'], /--batch-size must be at most 4096 \(videos a batch\), received 100000/],
    [['--tspnet-batch-size', '5000'], /--tspnet-batch-size must be at most 4096/],
    [['--iterations', '100000000'], /--iterations must be at most 10000000/],
    [['--epochs', '1000000'], /--epochs must be at most 100000/],
    [['--max-proposals', '2000000'], /--max-proposals must be at most 1000000/],
    [['--dim', '70000'], /--dim must be at most 65536/],
    [['--threads', '100000'], /--threads must be at most 4096/],
  ] as [string[], RegExp][])
    t.throws(() => checkNumericOptions(parse(...argv)), { instanceOf: CliError, message: msg }, argv.join(' '));
  t.notThrows(() => checkNumericOptions(parse('--batch-size', String(LIMITS.batchSize.max), '--iterations', '1000')));

  // the same bounds in a YAML config (a batch of 100000 used to pass: the config's bound was 100000)
  t.throws(() => loadConfig(config('batch.yaml', (y) => y.replace('batchSize: 16', 'batchSize: 100000'))), { message: /batch\.yaml: field "stage1\.batchSize" is 100000; at most 4096/ });
  t.throws(() => loadConfig(config('iters.yaml', (y) => y.replace('iterations: 1000', 'iterations: 100000000'))), { message: /iters\.yaml: field "stage1\.iterations" is 100000000; at most 10000000/ });
  t.throws(() => loadConfig(config('epochs.yaml', (y) => y.replace('epochs: 20', 'epochs: 1000000'))), { message: /epochs\.yaml: field "stage2\.epochs" is 1000000; at most 100000/ });
});

test('a stage-1 batch far larger than the training videos: `pstal check` and `pstal run` refuse it before any work, naming the config field or the option', (t) => {
  // batchSize 100000 with 21 videos ran on for minutes: every step went round the videos thousands of times
  const cfg = config('big-batch.yaml', (y) => y.replace('batchSize: 16', 'batchSize: 1000'));
  const c = pstal(['check', '--data', data, '--config', cfg]);
  t.is(c.status, 1, c.stdout + c.stderr);
  t.regex(c.stderr, new RegExp(`error: ${esc(cfg)}: stage1\\.batchSize: 1000 videos a batch with 6 training video\\(s\\) would go 167 times round them in every step; at most max\\(64, 4 x the training videos\\) = 64 is allowed`));
  const out = path.join(root, 'run-big-batch');
  const r = pstal(['run', '--data', data, '--config', cfg, '--out', out, '--iterations', '1', '--test-every', '1', '--epochs', '1', '--quiet']);
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /stage1\.batchSize: 1000 videos a batch/);
  const o = pstal(['run', '--data', data, '--out', out, '--batch-size', '100', '--iterations', '1', '--test-every', '1', '--epochs', '1', '--quiet']);
  t.is(o.status, 1, o.stderr);
  t.regex(o.stderr, /error: --batch-size: 100 videos a batch with 6 training video\(s\)/);
  t.false(fs.readdirSync(out).some((f) => f.startsWith('stage1')), fs.readdirSync(out).join(', '));
  // the shipped batch of 16 with 6 training videos stays allowed (a small dataset)
  t.is(pstal(['check', '--data', data]).status, 0);
});

test('synth: a width, video count or duration scale beyond the limits is refused before anything is written', async (t) => {
  // `synth --dim 2e7` wrote 916 MB before refusing; --dim 1e9 gave an internal message
  for (const [args, msg] of [
    [['--dim', '70000', '--videos', '2', '--duration-scale', '0.05'], /pstal synth: --dim must be at most 65536 \(the feature width D/],
    [['--dim', '1e9'], /pstal synth: --dim must be at most 65536/],
    [['--dim', '4', '--videos', '1', '--duration-scale', '100'], /pstal synth: --duration-scale 100 makes the longest video 140625 snippets; it must have at most 100000/],
  ] as [string[], RegExp][]) {
    const out = path.join(root, 'synth-refused');
    const r = pstal(['synth', '--out', out, '--quiet', ...args]);
    t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, msg);
    t.false(fs.existsSync(out), `${args.join(' ')} wrote ${out}`);
  }
  const out = path.join(root, 'synth-lib');
  await t.throwsAsync(() => synthesizeDataset({ out, dim: 70000, videos: 2 }), { message: /synth: dim 70000: the feature width must be at most 65536/ });
  t.false(fs.existsSync(out));
});

// ---- messages naming file and field; `pstal check` and `pstal run` agree -----------------------------

test('config values that used to fail inside training (dropout 1, extension 1e300) are errors naming the file and field, in `pstal check` as in `pstal run`', (t) => {
  for (const [name, edit, msg] of [
    ['dropout1.yaml', (y: string) => y.replace('  dropout: 0.7', '  dropout: 1'), /field "stage1\.dropout" must be a dropout probability in \[0, 1\)/],
    ['extension.yaml', (y: string) => y.replace('extension: 0.25', 'extension: 1e300'), /field "stage2\.extension" is 1e\+300; at most 10/],
  ] as [string, (y: string) => string, RegExp][]) {
    const cfg = config(name, edit);
    const c = pstal(['check', '--data', data, '--config', cfg]);
    t.is(c.status, 1, `${name}: pstal check said: ${c.stdout}${c.stderr}`);
    t.regex(c.stderr, new RegExp(`pstal check: ${esc(cfg)}: ${msg.source}`));
    t.throws(() => loadConfig(cfg), { message: new RegExp(`^${esc(cfg)}: ${msg.source}`) });
  }
});

test('features of 3e38 (finite, but training overflows) are an error naming the file, row and column', (t) => {
  const d = path.join(root, 'huge-features');
  fs.cpSync(data, d, { recursive: true });
  const list = fs.readFileSync(path.join(d, 'split_train.txt'), 'utf8').trim().split('\n');
  const file = path.join(d, 'features', 'train', `${list[0]}.npy`);
  const a = readNpy(file);
  a.data[3 * D + 5] = 3e38;
  writeNpy(file, a.data, a.shape);
  t.throws(() => loadDataset(d, loadConfig('thumos14', { featureDim: D })), {
    message: new RegExp(`^${esc(file)}: features hold 1 value\\(s\\) beyond \\+-1000000; the first, [\\d.]+e\\+38, at row \\(snippet\\) 3, column 5`),
  });
});

// ---- torch pickles -------------------------------------------------------------------------------------

const TENSORS = (): PickledTensor[] => [
  { name: 'a.weight', values: [1, 2, 3, 4, 5, 6], size: [2, 3], stride: [3, 1] },
  { name: 'b', values: [0.5, -0.25], dtype: 'float64' },
];

test('torch: rebuild arguments that torch.save never writes, or that a BUILD changed, are errors naming the file and tensor', (t) => {
  const ok = write('ok.pt', torchArchive(TENSORS()));
  const c = readTorchCheckpoint(ok);
  t.deepEqual([...c.tensors].map(([k, v]) => [k, v.shape, [...v.data]]), [['a.weight', [2, 3], [1, 2, 3, 4, 5, 6]], ['b', [2], [0.5, -0.25]]]);
  const cases: [Partial<PickledTensor>, RegExp][] = [
    // a tensor then BUILD {size: 'abc'} / {size: None} crashed with a TypeError naming no file
    [{ build: { size: 'abc' } }, /tensor 'a\.weight': its size is 'abc', not a list of non-negative integers/],
    [{ build: { size: null } }, /tensor 'a\.weight': its size is None, not a list of non-negative integers/],
    [{ build: { storage: 5 } }, /tensor 'a\.weight': its storage is 5, not a storage reference/],
    [{ storageBuild: { type: 'Nope' } }, /tensor 'a\.weight': its storage has the dtype 'Nope' \(known: FloatStorage/],
    [{ size: 'abc' }, /tensor 'a\.weight': its size is 'abc'/],
    [{ stride: [3, 'x'] }, /tensor 'a\.weight': its stride is \[3, 'x'\]/],
    [{ offset: 1.5 }, /tensor 'a\.weight': its storage offset is 1\.5, not a non-negative integer/],
    [{ size: [2, 3, 1], stride: [3, 1] }, /tensor 'a\.weight': its size \[2, 3, 1\] and stride \[3, 1\] differ in length/],
  ];
  for (const [change, msg] of cases) {
    const f = write('hostile.pt', torchArchive([{ ...TENSORS()[0], ...change }, TENSORS()[1]]));
    const e = t.throws(() => readTorchCheckpoint(f), undefined, JSON.stringify(change))!;
    t.is(e.constructor, Error, `${JSON.stringify(change)}: ${e.message}`);
    t.regex(e.message, new RegExp(`^${esc(f)}: ${msg.source}`), JSON.stringify(change));
  }
});

test('non-finite weights (a NaN, a float64 1e300 that is Inf in float32) are refused naming the file and tensor: torch, safetensors, our own checkpoints, pstal import', (t) => {
  const nan = write('nan.pt', torchArchive([{ ...TENSORS()[0], values: [1, NaN, 3, 4, 5, 6] }, TENSORS()[1]]));
  t.throws(() => readTorchCheckpoint(nan), { message: new RegExp(`^${esc(nan)}: tensor 'a\\.weight': holds a non-finite value \\(NaN at flat index 1\\)`) });
  const huge = write('huge.pt', torchArchive([TENSORS()[0], { name: 'b', values: [0.5, 1e300], dtype: 'float64' }]));
  t.throws(() => readTorchCheckpoint(huge), { message: new RegExp(`^${esc(huge)}: tensor 'b': holds a non-finite value \\(Infinity at flat index 1, a float64 beyond the float32 range\\)`) });
  // pstal import names them and writes nothing
  const out = path.join(root, 'import-nan');
  const r = pstal(['import', '--from', nan, '--stage', '2', '--out', out]);
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, new RegExp(`${esc(nan)}: tensor 'a\\.weight': holds a non-finite value`));
  t.false(fs.existsSync(path.join(out, 'stage2_best.safetensors')));
  // safetensors: an exported state dict, and our own checkpoints (every weight loader reads through loadSafetensors)
  const f64 = Buffer.alloc(16);
  f64.writeDoubleLE(1, 0);
  f64.writeDoubleLE(1e300, 8);
  const st = write('huge.safetensors', safetensorsBytes({ w: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, f64));
  t.throws(() => loadSafetensors(st), { message: new RegExp(`^${esc(st)}: tensor 'w' holds a non-finite value \\(Infinity at flat index 1, an F64 beyond the float32 range\\)`) });
  const own = path.join(root, 'stage1_best.safetensors');
  saveSafetensors(own, new Map([['classifier.1.weight', { shape: [2, 2], data: Float32Array.of(0, 1, NaN, 3) }]]), { pstal: 'stage1-model' });
  t.throws(() => loadSafetensors(own), { message: new RegExp(`^${esc(own)}: tensor 'classifier\\.1\\.weight' holds a non-finite value \\(NaN at flat index 2\\)`) });
});

// ---- ambiguous containers ----------------------------------------------------------------------------------

test('ambiguous containers are refused naming the file: a zip entry twice, a .npy header key twice, safetensors tensors over the same bytes', (t) => {
  // two entries of one name: pstal took the last, torch.load the first
  for (const entry of ['archive/data/0', 'archive/data.pkl', 'archive/byteorder']) {
    const f = write('dup.pt', torchArchive(TENSORS(), [[entry, new Uint8Array(24)]]));
    t.throws(() => readTorchCheckpoint(f), { message: new RegExp(`^${esc(f)}: the zip archive holds two entries named '${esc(entry)}'`) }, entry);
  }
  // a .npy header repeating 'shape': numpy reads the last value, a regular expression the first
  const values = Buffer.alloc(8);
  values.writeFloatLE(1, 0);
  values.writeFloatLE(2, 4);
  t.deepEqual(readNpy(write('one.npy', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", values))).shape, [2]);
  for (const dict of [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (1,), }",
    "{'descr': '<f4', 'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
    "{'descr': '<f4', 'fortran_order': False, 'fortran_order': True, 'shape': (2,), }",
  ]) {
    const f = write('dup.npy', npyBytes(dict, values));
    t.throws(() => readNpy(f), { message: new RegExp(`^${esc(f)}: not a valid \\.npy file: the key '\\w+' is given twice`) }, dict);
    t.throws(() => readNpyHeader(f), { message: new RegExp(`^${esc(f)}: not a valid \\.npy file: the key '\\w+' is given twice`) }, dict);
  }
  t.throws(() => readNpy(write('extra.npy', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", values))), { message: /unknown key 'x'/ });
  // safetensors: two tensors over the same bytes
  const bytes = Buffer.alloc(24);
  const st = write('overlap.safetensors', safetensorsBytes({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, bytes));
  t.throws(() => loadSafetensors(st), { message: new RegExp(`^${esc(st)}: not a valid safetensors file: tensors 'a' \\(data_offsets \\[0, 16\\]\\) and 'b' \\(\\[8, 16\\]\\) overlap`) });
  // a tensor inside a longer one, with an empty tensor between them in offset order
  const st2 = write('overlap2.safetensors', safetensorsBytes({ a: { dtype: 'F32', shape: [6], data_offsets: [0, 24] }, e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, c: { dtype: 'F32', shape: [1], data_offsets: [16, 20] } }, bytes));
  t.throws(() => loadSafetensors(st2), { message: /tensors 'a' \(data_offsets \[0, 24\]\) and 'c' \(\[16, 20\]\) overlap/ });
  const fine = write('fine.safetensors', safetensorsBytes({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] }, c: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, bytes));
  t.is(loadSafetensors(fine).tensors.size, 3);
});

test('fuzz: hostile containers (entries twice, npy keys twice, overlapping tensors, non-finite weights, BUILD states) give an Error naming the file', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-fuzz-containers-'));
  try {
    const r = await fuzzWithWatchdog({ cases: 900, seed: 7, tmp, only: ['torch containers', 'npy keys', 'safetensors containers'], hangMs: 15000 });
    for (const f of r.failures) t.log(`[${f.target} #${f.caseIndex}] ${f.why}`);
    t.is(r.cases, 900);
    t.deepEqual(r.failures.map((f) => `${f.target} #${f.caseIndex}: ${f.why}`), []);
    // every npy-keys mutation repeats a key, so that target accepts nothing by design
    for (const [name, s] of Object.entries(r.byTarget)) t.true(s.rejected > 0 && s.accepted + s.rejected === s.cases, `${name}: ${JSON.stringify(s)}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// ---- environment and options that would be ignored ------------------------------------------------------------

test('PSTAL_NUM_THREADS, PSTAL_GEMM and the other kernel variables, and conflicting `pstal points` options, are usage errors instead of being ignored', (t) => {
  for (const [env, msg] of [
    [{ PSTAL_NUM_THREADS: 'abc' }, /pstal check: PSTAL_NUM_THREADS must be a positive integer, received 'abc'/],
    [{ PSTAL_NUM_THREADS: '0' }, /PSTAL_NUM_THREADS must be a positive integer, received '0'/],
    [{ PSTAL_NUM_THREADS: '99999' }, /PSTAL_NUM_THREADS must be at most 4096/],
    [{ PSTAL_GEMM: 'blas' }, /PSTAL_GEMM must be 'openblas' \(or unset\), received 'blas'/],
    [{ PSTAL_GEMM_BF16: 'yes' }, /PSTAL_GEMM_BF16 must be 'emulate' \(or unset\), received 'yes'/],
    [{ PSTAL_GEMM_KC: '-3' }, /PSTAL_GEMM_KC must be a positive integer, received '-3'/],
    [{ PSTAL_ATTENTION_BLOCK: '1e5' }, /PSTAL_ATTENTION_BLOCK must be a positive integer, received '1e5'/],
  ] as [Record<string, string>, RegExp][]) {
    const r = pstal(['check', '--data', data], env);
    t.is(r.status, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    t.regex(r.stderr, msg);
  }
  t.is(pstal(['check', '--data', data], { PSTAL_NUM_THREADS: '2', PSTAL_GEMM_KERNEL: 'generic' }).status, 0);
  const gt = path.join(data, 'gt_full.json');
  const csv = path.join(root, 'points.csv');
  for (const [args, msg] of [
    [['--sigma', '2', '--sigma-fraction', '0.1'], /pstal points: --sigma and --sigma-fraction both set the Gaussian's standard deviation: give one/],
    [['--distribution', 'uniform', '--sigma', '2'], /pstal points: --sigma is for --distribution gaussian \(received --distribution uniform/],
    [['--distribution', 'center', '--sigma-fraction', '0.2'], /pstal points: --sigma-fraction is for --distribution gaussian/],
  ] as [string[], RegExp][]) {
    const r = pstal(['points', '--gt', gt, '--out', csv, ...args]);
    t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, msg);
    t.false(fs.existsSync(csv));
  }
  const ok = pstal(['points', '--gt', gt, '--out', csv, '--distribution', 'uniform']);
  t.is(ok.status, 0, ok.stderr);
});

// ---- locks ---------------------------------------------------------------------------------------------------------

test.serial('a lock naming a live process that is not its owner (an unrelated program, or a reused pid) is taken over with a message; the owner\'s lock is refused', async (t) => {
  const dir = path.join(root, 'lock-unrelated');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  const sleeper = spawn('sleep', ['30']);
  try {
    await new Promise((res) => sleeper.once('spawn', res));
    const pid = sleeper.pid!;
    const owner = { pid, host: os.hostname(), started: '2026-01-01T00:00:00Z' };
    // a lock without a start-time token naming a live `sleep`: refused forever before
    fs.writeFileSync(file, JSON.stringify({ ...owner, command: 'pstal run --out lock-unrelated' }));
    let lock = lockRunFolder(dir);
    t.regex(lock.takenOver ?? '', new RegExp(`^took over ${esc(file)}: pid ${pid} is alive but runs \`sleep 30\`, not the lock's command \`pstal run --out lock-unrelated\``));
    t.is(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
    lock.release();
    // a token of another process: the pid was reused
    fs.writeFileSync(file, JSON.stringify({ ...owner, command: 'sleep 30', token: 'another-boot:1' }));
    lock = lockRunFolder(dir);
    t.regex(lock.takenOver ?? '', new RegExp(`pid ${pid} is alive but is a later process than the lock's owner`));
    lock.release();
    // the owner's own token: refused, naming it
    const token = processStartToken(pid);
    t.truthy(token);
    fs.writeFileSync(file, JSON.stringify({ ...owner, command: 'pstal run --out lock-unrelated', token }));
    t.throws(() => lockRunFolder(dir), { instanceOf: FolderLockedError, message: new RegExp(`lock-unrelated is in use by another pstal process \\(pid ${pid}, since 2026-01-01T00:00:00Z`) });
    // our own lock records our token
    fs.rmSync(file);
    lock = lockRunFolder(dir);
    t.is(lock.takenOver, null);
    t.is(JSON.parse(fs.readFileSync(file, 'utf8')).token, processStartToken(process.pid));
    lock.release();
  } finally {
    sleeper.kill('SIGKILL');
  }
});
