/**
 * Hostile files, one test (or a few) a class of hole an adversarial probe found, each with the
 * command it found it with and the library function every such case now goes through:
 *   1. a video name from a data file made a path outside its folder (videoFile / safeName);
 *   2. an output that is a symbolic link, a FIFO or a device was swapped for a regular file
 *      (AtomicFileWriter writes through a link to a regular file and refuses the rest);
 *   3. an output that is the command's own input, or a dataset folder not empty, was written over
 *      (refused; --force for the folder);
 *   4. an input that is not a regular file: a FIFO blocked `check` and `detect` for ever, /dev/zero
 *      as features grew until the process was killed (openRegular / readRegularFile: refused
 *      before a byte is read, and a .npy read takes only the bytes its header declares).
 * Children run with a timeout (and /dev/zero readers under a memory limit), so a hang or a runaway
 * read fails a test instead of stalling CI or the machine. POSIX only (FIFOs, links, /dev/zero).
 */
import test from 'ava';
import { spawnSync, SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthesizeDataset } from '../../lib/data/synth';
import { loadConfig, loadDataset, Dataset } from '../../lib/data';
import { readDatasetFiles } from '../../lib/data/dataset';
import { readSplit } from '../../lib/formats/splits';
import { encodeNpy, readNpy } from '../../lib/data/npy';
import { trainStage1 } from '../../lib/models/hrpro/train_stage1';
import { stage1ConfigFrom } from '../../lib/models/hrpro/config';
import { writeFileAtomic, AtomicFileWriter } from '../../lib/util/fs';
import { safeName, videoFile } from '../../lib/util/paths';
import { ensureCompiled, BIN } from '../helpers/killrun';

const POSIX = process.platform !== 'win32';
const ptest = POSIX ? test.serial : test.serial.skip;
const D = 16;
const DIST = path.resolve(__dirname, '..', '..', 'dist', 'lib');
let root: string;
let data: string;
let run: string;
let ds: Dataset;

test.before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-hostile-'));
  data = path.join(root, 'data');
  await synthesizeDataset({ out: data, dim: D, seed: 4, videos: 12, knobs: { durationScale: 0.2 } });
  ds = loadDataset(data, loadConfig('thumos14', { featureDim: D }));
  run = path.join(root, 'run');
  const ctx = { out: run, classNames: ds.classNames, train: ds.train, test: ds.test, ambiguous: ds.ambiguous, blockedVideos: [], quiet: true, log: () => undefined };
  (await trainStage1(ctx, stage1ConfigFrom(ds.config, { iterations: 2, testEvery: 2, batchSize: 2, seed: 1, lr: 1e-3 }))).model.dispose();
});
test.after.always(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const cliEnv = () => {
  const e: NodeJS.ProcessEnv = { ...process.env, PSTAL_NUM_THREADS: '1', PSTAL_COMPILED: '1' };
  delete e.PSTAL_TS;
  return e;
};
/** `pstal ...` with a timeout: a hang is a failed test (status null), not a stalled CI. */
const pstal = (args: string[], timeout = 60000): SpawnSyncReturns<string> => {
  ensureCompiled();
  return spawnSync(process.execPath, [BIN, ...args], { cwd: root, encoding: 'utf8', env: cliEnv(), timeout, killSignal: 'SIGKILL' });
};
/** `pstal ...` under a 4 GB address-space limit: a read that never ends fails instead of taking the machine's memory. */
const pstalLimited = (args: string[], timeout = 60000): SpawnSyncReturns<string> => {
  ensureCompiled();
  return spawnSync('bash', ['-c', 'ulimit -v 4000000; exec "$0" "$@"', process.execPath, BIN, ...args], { cwd: root, encoding: 'utf8', env: cliEnv(), timeout, killSignal: 'SIGKILL' });
};
const mkfifo = (file: string): string => {
  fs.rmSync(file, { force: true });
  const r = spawnSync('mkfifo', [file]);
  if (r.status !== 0) throw new Error(`mkfifo ${file} failed: ${r.stderr}`);
  return file;
};
/**
 * A character device node of our own (/dev/null's numbers) in the scratch folder, or null where
 * mknod is not permitted (not root). Tests never point a write at the system's /dev: a writer that
 * replaced what it was given would replace the machine's /dev/null for every process on it.
 */
const mkdev = (file: string): string | null => {
  fs.rmSync(file, { force: true });
  return spawnSync('mknod', ['-m', '666', file, 'c', '1', '3']).status === 0 ? file : null;
};
const fresh = (name: string): string => {
  const d = path.join(root, name);
  fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(d, { recursive: true });
  return d;
};
const firstNpy = (split: 'train' | 'test'): string => path.join(data, 'features', split, `${ds[split][0].name}.npy`);

// ---- 1. names from data never make a path outside their folder --------------------------------

test('videoFile / safeName: separators, . and .., absolute paths, NUL and empty names are refused naming where the name came from', (t) => {
  for (const bad of ['', '.', '..', 'a/b', '../x', '../../../x', 'a\\b', '..\\x', '/etc/passwd', 'C:x', 'c:\\x', 'x\0y'])
    t.throws(() => videoFile('/data/features/train', bad, '.npy', 'split_train.txt:3'), { message: /^split_train\.txt:3: ".*" is not a video name: it / }, JSON.stringify(bad));
  for (const ok of ['video_test_0000004', 'S1_Cheese_C1', 'v_--0edUL8zmA', 'v.1', 'a b', '..a', 'a..', '...']) {
    const f = videoFile('/data/features/train', ok, '.npy', 'x');
    t.is(path.dirname(f), path.normalize('/data/features/train'), ok);
    t.is(safeName(ok, 'x'), ok);
  }
});

test('readSplit: a name that is no file name is refused with the file, the entry and the line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-split-'));
  try {
    const w = (n: string, s: string) => (fs.writeFileSync(path.join(dir, n), s), path.join(dir, n));
    t.throws(() => readSplit(w('a.txt', 'v1\n\n  \n..\n')), { message: /a\.txt: entry 2 "\.\." is not a video name \(line 4\): it is "\.\."/ });
    t.throws(() => readSplit(w('b.txt', 'v1\nC:evil\n')), { message: /b\.txt: entry 2 "C:evil" is not a video name \(line 2\): it is an absolute path/ });
    t.throws(() => readSplit(w('c.txt', 'v1\nx\\..\\..\\y\n')), { message: /c\.txt: entry 2 .* \(line 2\): it holds a path separator/ });
    t.deepEqual(readSplit(w('d.txt', 'v1\n..v2\nv.3\n')), ['v1', '..v2', 'v.3']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('the loader makes feature paths with videoFile: a parsed split name with a separator is refused, not read outside features/<split>/', (t) => {
  // a library caller hands parsed files over (as pstal check does); one name reaches features/
  const files = readDatasetFiles(data);
  const escaped = path.join(data, 'features', 'escaped.npy');
  fs.copyFileSync(firstNpy('train'), escaped);
  try {
    const v0 = files.gt.get(ds.train[0].name)!;
    files.gt.set('../escaped', v0);
    files.lists.set('train', [...files.lists.get('train')!, '../escaped']);
    t.throws(() => loadDataset(data, ds.config, { files }), { message: /split_train\.txt: "\.\.\/escaped" is not a video name: it holds a path separator/ });
  } finally {
    fs.rmSync(escaped, { force: true });
  }
});

ptest('pstal synth: a split entry ../../../x is refused, nothing is written above --out', (t) => {
  const ann = fresh('ann-escape');
  for (const f of ['gt_full.json', 'split_test.txt']) fs.copyFileSync(path.join(data, f), path.join(ann, f));
  fs.writeFileSync(path.join(ann, 'split_train.txt'), `${ds.train[0].name}\n../../../x\n`);
  const out = path.join(root, 'escape', 'a', 'b', 'c');
  const r = pstal(['synth', '--annotations', ann, '--out', out, '--dim', '4', '--quiet']);
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /split_train\.txt: entry 2 "\.\.\/\.\.\/\.\.\/x" is not a video name \(line 2\)/);
  t.false(fs.existsSync(path.join(root, 'escape', 'x.npy')));
  t.false(fs.existsSync(path.join(root, 'escape', 'a', 'b', 'c', 'features')));
});

ptest('pstal detect: a --features file named ..npy or .npy is refused; --plot never writes beside its folder', (t) => {
  for (const n of ['..npy', '.npy']) {
    const dir = fresh(`dotnames${n}`);
    const f = path.join(dir, n);
    fs.copyFileSync(firstNpy('test'), f);
    const plots = path.join(dir, 'plots');
    const r = pstal(['detect', '--model', run, '--features', f, '--plot', plots]);
    t.is(r.status, 2, r.stderr);
    t.regex(r.stderr, new RegExp(`--features .*${n.replace(/\./g, '\\.')}: "\\.?" is not a video name`));
    // path.join(plots, '.') + '.svg' was plots.svg, beside the folder
    t.deepEqual(fs.readdirSync(dir).sort(), [n]);
  }
});

// ---- 2. an output that is a link is written through; one that is not a regular file is refused --------

ptest('writeFileAtomic / AtomicFileWriter: a link to a regular file is written through (link kept, target mode kept); a FIFO, a folder, a link to a device and a dangling link are refused and left as they were', (t) => {
  const dir = fresh('writes');
  const target = path.join(dir, 'target.json');
  fs.writeFileSync(target, 'old');
  fs.chmodSync(target, 0o640);
  const link = path.join(dir, 'link.json');
  fs.symlinkSync('target.json', link); // relative, as ln -s makes them
  const link2 = path.join(dir, 'link2.json');
  fs.symlinkSync(link, link2); // a chain
  writeFileAtomic(link2, 'new');
  t.true(fs.lstatSync(link).isSymbolicLink());
  t.true(fs.lstatSync(link2).isSymbolicLink());
  t.is(fs.readFileSync(target, 'utf8'), 'new');
  t.is(fs.statSync(target).mode & 0o777, 0o640);
  const w = new AtomicFileWriter(link);
  w.write('streamed');
  w.commit();
  t.true(fs.lstatSync(link).isSymbolicLink());
  t.is(fs.readFileSync(target, 'utf8'), 'streamed');

  const fifo = mkfifo(path.join(dir, 'fifo.json'));
  const folder = path.join(dir, 'folder.json');
  fs.mkdirSync(folder);
  const fifoLink = path.join(dir, 'fifo-link.json');
  fs.symlinkSync('fifo.json', fifoLink);
  const dangling = path.join(dir, 'dangling.json');
  fs.symlinkSync('missing.json', dangling);
  const cases: [string, RegExp, () => boolean][] = [
    [fifo, /it is a FIFO, not a regular file/, () => fs.lstatSync(fifo).isFIFO()],
    [folder, /it is a directory, not a regular file/, () => fs.lstatSync(folder).isDirectory()],
    [fifoLink, /it is a symbolic link to a FIFO \(.*fifo\.json\)/, () => fs.lstatSync(fifoLink).isSymbolicLink() && fs.statSync(fifoLink).isFIFO()],
    [dangling, /it is a symbolic link to a missing file \(missing\.json\)/, () => fs.lstatSync(dangling).isSymbolicLink()],
  ];
  const dev = mkdev(path.join(dir, 'null.json'));
  if (dev) {
    const devLink = path.join(dir, 'dev-link.json');
    fs.symlinkSync('null.json', devLink);
    cases.push([dev, /it is a character device, not a regular file/, () => fs.lstatSync(dev).isCharacterDevice()]);
    cases.push([devLink, /it is a symbolic link to a character device \(.*null\.json\)/, () => fs.lstatSync(devLink).isSymbolicLink() && fs.statSync(devLink).isCharacterDevice()]);
  } else t.log('mknod not permitted here: the device cases are left out');
  for (const [file, why, kept] of cases) {
    t.throws(() => writeFileAtomic(file, 'x'), { message: new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot write: ${why.source}`) }, file);
    t.throws(() => new AtomicFileWriter(file), { message: why }, file);
    t.true(kept(), file);
  }
  t.false(fs.existsSync(path.join(dir, 'missing.json')));
  t.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
});

ptest('pstal points --out: a FIFO or a link to a device is refused naming it and left as it was; a link to a csv is written through', (t) => {
  const dir = fresh('points-out');
  const gt = path.join(data, 'gt_full.json');
  const fifo = mkfifo(path.join(dir, 'fifo.csv'));
  let r = pstal(['points', '--gt', gt, '--out', fifo]);
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /fifo\.csv: cannot write: it is a FIFO, not a regular file/);
  t.true(fs.lstatSync(fifo).isFIFO());
  if (mkdev(path.join(dir, 'dev'))) {
    const full = path.join(dir, 'full.csv');
    fs.symlinkSync('dev', full);
    r = pstal(['points', '--gt', gt, '--out', full]);
    t.is(r.status, 1, r.stderr);
    t.regex(r.stderr, /full\.csv: cannot write: it is a symbolic link to a character device \(.*dev\)/);
    t.true(fs.lstatSync(full).isSymbolicLink());
    t.true(fs.lstatSync(path.join(dir, 'dev')).isCharacterDevice());
  }
  fs.writeFileSync(path.join(dir, 'real.csv'), '');
  fs.symlinkSync('real.csv', path.join(dir, 'via.csv'));
  r = pstal(['points', '--gt', gt, '--out', path.join(dir, 'via.csv')]);
  t.is(r.status, 0, r.stderr);
  t.true(fs.lstatSync(path.join(dir, 'via.csv')).isSymbolicLink());
  t.regex(fs.readFileSync(path.join(dir, 'real.csv'), 'utf8'), /^class,class_index,start_frame,stop_frame,video_id,point\n/);
});

// ---- 3. an output is never the command's own input; a dataset folder is not written over --------------

ptest('an output that is an input of the same command is refused before anything is written (same path, a link to it, a hard link, the same folder)', (t) => {
  const d = fresh('self');
  fs.cpSync(data, d, { recursive: true });
  const gt = path.join(d, 'gt_full.json');
  const before = fs.readFileSync(gt);
  fs.symlinkSync('gt_full.json', path.join(d, 'alias.json'));
  fs.linkSync(gt, path.join(d, 'hard.json'));
  for (const out of [gt, path.join(d, 'alias.json'), path.join(d, 'hard.json'), path.join(d, '..', 'self', 'gt_full.json')]) {
    const r = pstal(['points', '--gt', gt, '--out', out]);
    t.is(r.status, 2, `${out}: ${r.stderr}`);
    t.regex(r.stderr, /--out .* is the --gt file .*: the output would replace the command's own input/);
  }
  t.deepEqual(fs.readFileSync(gt), before);

  const feature = path.join(d, 'features', 'train', `${ds.train[0].name}.npy`);
  const featureBytes = fs.readFileSync(feature);
  for (const args of [['synth', '--annotations', d, '--out', d, '--dim', '4', '--quiet'], ['synth', '--annotations', d, '--out', `${d}/.`, '--dim', '4', '--force'], ['gt', '--annotations', d, '--out', d, '--force']]) {
    const r = pstal(args);
    t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /--out .* is the --annotations folder .*: the output would replace the command's own input/);
  }
  t.deepEqual(fs.readFileSync(feature), featureBytes);
  t.deepEqual(fs.readFileSync(gt), before);
});

test.serial('synthesizeDataset refuses its annotation folder as the output', async (t) => {
  const d = fresh('self-lib');
  fs.cpSync(data, d, { recursive: true });
  const e = await t.throwsAsync(synthesizeDataset({ annotations: d, out: path.join(d, '.'), dim: 4 }));
  t.regex(e!.message, /synth: the output folder .* is the annotation folder/);
});

ptest('pstal synth / gt: a non-empty --out is refused without --force and written over with it', (t) => {
  const out = fresh('nonempty');
  fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
  let r = pstal(['synth', '--out', out, '--videos', '2', '--dim', '4', '--duration-scale', '0.2', '--quiet']);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /--out .*nonempty is not empty \(notes\.txt\); write into a new folder, or pass --force/);
  t.false(fs.existsSync(path.join(out, 'gt_full.json')));
  r = pstal(['synth', '--out', out, '--videos', '2', '--dim', '4', '--duration-scale', '0.2', '--quiet', '--force']);
  t.is(r.status, 0, r.stderr);
  t.is(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8'), 'mine');

  const g = path.join(root, 'gt-out');
  fs.rmSync(g, { recursive: true, force: true });
  // synth labels only the training videos: the test split is drawn from them
  const gtArgs = ['gt', '--annotations', data, '--out', g, '--fps', '30', '--holdout', '0.34'];
  r = pstal(gtArgs);
  t.is(r.status, 0, r.stderr);
  r = pstal(gtArgs);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /--out .*gt-out is not empty \(gt_full\.json, point_labels, split_test\.txt, split_train\.txt\)/);
  t.is(pstal([...gtArgs, '--force']).status, 0);
  t.regex(pstal(['synth', '--help']).stdout, /--force .*not empty/);
  t.regex(pstal(['gt', '--help']).stdout, /--force .*not empty/);
});

ptest('pstal train --method tspnet: --out equal to --base, or holding the --proposals files, is refused before the base run is touched', (t) => {
  const entries = fs.readdirSync(run).sort();
  let r = pstal(['train', '--method', 'tspnet', '--data', data, '--base', run, '--out', run, '--iterations', '2', '--test-every', '2', '--quiet']);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /--out .* is the --base run folder .*: the output would replace the command's own input/);
  t.deepEqual(fs.readdirSync(run).sort(), entries); // no dataset.json, no metrics.svg, no tspnet_*
  const out = fresh('tsp-out');
  const props = path.join(out, 'proposals_train.json');
  fs.writeFileSync(props, '{"results": {}}');
  r = pstal(['train', '--method', 'tspnet', '--data', data, '--proposals-train', props, '--proposals-test', props, '--out', out, '--iterations', '2', '--test-every', '2', '--quiet']);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /is the --proposals-train file/);
  t.is(fs.readFileSync(props, 'utf8'), '{"results": {}}');
});

ptest('pstal detect / report: --out that is a --features file or a file of the run is refused', (t) => {
  const d = fresh('det-self');
  const f = path.join(d, 'v.npy');
  fs.copyFileSync(firstNpy('test'), f);
  const bytes = fs.readFileSync(f);
  let r = pstal(['detect', '--model', run, '--features', f, '--out', f]);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /--out .*v\.npy is --features .*v\.npy: the output would replace/);
  t.deepEqual(fs.readFileSync(f), bytes);
  const config = path.join(run, 'config.json');
  const cfg = fs.readFileSync(config);
  r = pstal(['detect', '--model', run, '--features', f, '--out', config]);
  t.is(r.status, 2, r.stderr);
  r = pstal(['report', run, '--data', data, '--out', config]);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /--out .*config\.json is a file of the run folder/);
  r = pstal(['report', run, '--data', data, '--out', path.join(data, 'gt_full.json')]);
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /is a file of the data folder/);
  t.deepEqual(fs.readFileSync(config), cfg);
});

// ---- 4. inputs are regular files, read no further than they declare ---------------------------------

/**
 * Each reader of outside files, on `file`, in a child process (a FIFO blocks a reading open in the
 * thread that makes it; an unbounded read of /dev/zero is stopped by the memory limit instead of
 * taking the machine): one line a reader, `name: message`.
 */
function readersOn(file: string): { status: number | null; lines: string[]; stderr: string } {
  ensureCompiled();
  const code = `
    const [file, dist] = process.argv.slice(1);
    const r = (p) => require(dist + p);
    const readers = {
      readNpy: () => r('/data/npy').readNpy(file),
      readNpyHeader: () => r('/data/npy').readNpyHeader(file),
      readGroundTruth: () => r('/formats/ground_truth').readGroundTruth(file),
      readSplit: () => r('/formats/splits').readSplit(file),
      readPointLabels: () => r('/formats/point_labels').readPointLabels(file),
      readResults: () => r('/formats/results').readResults(file),
      readProposals: () => r('/formats/proposals').readProposals(file),
      readJsonFile: () => r('/util/json').readJsonFile(file),
      loadSafetensors: () => r('/io/safetensors').loadSafetensors(file),
      readTorchCheckpoint: () => r('/io/torch').readTorchCheckpoint(file),
      loadConfig: () => r('/data/config').loadConfig(file),
    };
    for (const [name, read] of Object.entries(readers)) {
      try { read(); console.log(name + ': read'); } catch (e) { console.log(name + ': ' + String(e.message).split('\\n')[0]); }
    }`;
  const r = spawnSync('bash', ['-c', 'ulimit -v 3000000; exec "$0" -e "$1" "$2" "$3"', process.execPath, code, file, DIST], { encoding: 'utf8', timeout: 60000, killSignal: 'SIGKILL' });
  return { status: r.status, lines: r.stdout.trim().split('\n').filter(Boolean), stderr: r.stderr };
}

ptest('every reader refuses a FIFO and /dev/zero (through a link) at once, naming the file, without reading', (t) => {
  const dir = fresh('readers');
  const fifo = mkfifo(path.join(dir, 'in.yaml'));
  const zero = path.join(dir, 'zero.yaml');
  fs.symlinkSync('/dev/zero', zero);
  for (const [file, kind] of [[fifo, 'a FIFO'], [zero, 'a character device']]) {
    const t0 = Date.now();
    const r = readersOn(file);
    t.is(r.status, 0, `${file}: ${r.stderr.slice(-500)}`);
    t.is(r.lines.length, 11, r.lines.join('\n'));
    for (const line of r.lines) t.true(line.includes(`${file} is ${kind}, not a regular file`), line);
    t.true(Date.now() - t0 < 30000);
  }
});

ptest('pstal check and pstal detect: a FIFO as features, ground truth or split list is an error naming it, not a hang', (t) => {
  const d = fresh('fifo-data');
  fs.cpSync(data, d, { recursive: true });
  const feature = mkfifo(path.join(d, 'features', 'test', `${ds.test[0].name}.npy`));
  let r = pstal(['check', '--data', d, '--dim', String(D)], 30000);
  t.is(r.status, 1, `${r.error ?? ''} ${r.stderr}`);
  t.regex(r.stderr, new RegExp(`${ds.test[0].name}\\.npy.*is a FIFO, not a regular file`));
  for (const f of ['split_train.txt', 'gt_full.json']) {
    mkfifo(path.join(d, f));
    r = pstal(['check', '--data', d, '--dim', String(D)], 30000);
    t.is(r.status, 1, `${f}: ${r.error ?? ''} ${r.stderr}`);
    t.regex(r.stderr, new RegExp(`${f.replace('.', '\\.')} is a FIFO, not a regular file`));
  }
  r = pstal(['detect', '--model', run, '--features', feature], 30000);
  t.is(r.status, 1, `${r.error ?? ''} ${r.stderr}`);
  t.regex(r.stderr, /\.npy is a FIFO, not a regular file/);
  r = pstal(['detect', '--model', run, '--features', firstNpy('test'), '--gt', path.join(d, 'gt_full.json')], 30000);
  t.is(r.status, 1, `${r.error ?? ''} ${r.stderr}`);
  t.regex(r.stderr, /gt_full\.json is a FIFO, not a regular file/);
  const zero = path.join(d, 'zero.npy');
  fs.symlinkSync('/dev/zero', zero);
  r = pstalLimited(['detect', '--model', run, '--features', zero], 30000);
  t.is(r.status, 1, `${r.error ?? ''} ${r.stderr}`);
  t.regex(r.stderr, /zero\.npy is a character device, not a regular file/);
});

test('readNpy reads only what the header declares: trailing bytes are not read, a short file is refused before its shape is allocated', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-npy-'));
  try {
    const parts = encodeNpy(Float32Array.of(1, 2, 3, 4, 5, 6), [2, 3]);
    const f = path.join(dir, 'a.npy');
    fs.writeFileSync(f, Buffer.concat([...parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)), Buffer.alloc(1 << 20, 7)]));
    t.deepEqual([...readNpy(f).data], [1, 2, 3, 4, 5, 6]);
    const head = Buffer.from(parts[0]).toString('latin1') + Buffer.from(parts[1]).toString('latin1');
    const huge = head.replace("'shape': (2, 3)", "'shape': (99999, 999999)");
    const g = path.join(dir, 'b.npy');
    const hb = Buffer.from(huge, 'latin1');
    hb.writeUInt16LE(hb.length - 10, 8);
    fs.writeFileSync(g, Buffer.concat([hb, Buffer.alloc(24)]));
    t.throws(() => readNpy(g), { message: /b\.npy: truncated: shape \(99999, 999999\) needs 399995600004 bytes of data, the file has 24/ });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
