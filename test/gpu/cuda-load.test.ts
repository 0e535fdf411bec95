/**
 * The CUDA addon as built here (scripts/build-cuda.js: build-cuda/Release/pstal_cuda.node; with
 * --package also npm/linux-x64-cuda/pstal_cuda.node) carries no rpath, needs cuBLAS by soname only,
 * and loads, GPU or not, once lib/runtime/cublas.ts has found cuBLAS (PSTAL_CUBLAS, the toolkit, a
 * pip wheel, the library path) and loaded it: every other shared library it needs resolves. On a
 * machine without a usable GPU, asking for device 'cuda' (a tensor, a model, `pstal train --device
 * cuda`) gives the JS error "no CUDA device", never a crash; on a machine with one, the addon loads
 * and says it is the CUDA backend. Skipped, saying why, where no CUDA build exists.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CUDA_ADDON_FILE, cuda, cudaAddonSources, loadCudaAddon } from '../../lib/runtime/backend';
import { cublasMajorOf, elfDynamic } from '../../lib/runtime/cublas';
import { Tensor } from '../../lib/tensor/tensor';
import { Linear } from '../../lib/nn/layers';
import { Rng } from '../../lib/util/rng';

const ROOT = path.resolve(__dirname, '..', '..');
const PACKAGED = path.join(ROOT, 'npm', `${process.platform}-${process.arch}-cuda`, 'pstal_cuda.node');

test('the loader tries the local build, then the platform package, and PSTAL_CUDA_ADDON alone when set', (t) => {
  const kinds = cudaAddonSources().map((s) => s.kind);
  if (fs.existsSync(CUDA_ADDON_FILE)) t.is(kinds[0], 'the local build');
  t.true(kinds.every((k) => k === 'the local build' || /^@pstal\/\S+-cuda \d/.test(k)), kinds.join(', '));
  const before = process.env.PSTAL_CUDA_ADDON;
  process.env.PSTAL_CUDA_ADDON = path.join(os.tmpdir(), 'x.node');
  try {
    t.deepEqual(cudaAddonSources(), [{ file: path.join(os.tmpdir(), 'x.node'), kind: 'PSTAL_CUDA_ADDON' }]);
  } finally {
    if (before === undefined) delete process.env.PSTAL_CUDA_ADDON;
    else process.env.PSTAL_CUDA_ADDON = before;
  }
});

const built = [CUDA_ADDON_FILE, PACKAGED].filter((f) => fs.existsSync(f));

/** Whether this machine has a usable GPU: the addon itself decides (cudaGetDeviceCount). */
function gpuHere(file: string): boolean {
  try {
    loadCudaAddon(file);
    return true;
  } catch (e) {
    if (/no CUDA device/.test((e as Error).message)) return false;
    throw e; // any other load failure (an unresolved symbol, no cuBLAS found) is this test's failure
  }
}

if (built.length === 0) {
  test.skip('the CUDA addon loads (skipped: no CUDA build here; `npm run build:cuda` makes build-cuda/Release/pstal_cuda.node where nvcc is)', () => {});
} else {
  for (const file of built) {
    const rel = path.relative(ROOT, file);
    test(`${rel}: no rpath, cuBLAS by soname, every other library resolves`, (t) => {
      const dyn = elfDynamic(file)!;
      t.deepEqual([...dyn.rpath, ...dyn.runpath], [], `no RPATH/RUNPATH (a stale build? \`npm run build:cuda\`): ${[...dyn.rpath, ...dyn.runpath].join(':')}`);
      const major = cublasMajorOf(file);
      t.truthy(major, `DT_NEEDED names libcublas.so.N: ${dyn.needed.join(', ')}`);
      const readelf = spawnSync('readelf', ['-d', file], { encoding: 'utf8' });
      if (readelf.status === 0) t.notRegex(readelf.stdout, /\((RPATH|RUNPATH)\)/, 'readelf -d agrees');
      // ldd: cuBLAS may be "not found" (it is found and loaded at run time), nothing else may
      const ldd = execFileSync('ldd', [file], { encoding: 'utf8' });
      const missing = ldd.split('\n').filter((l) => /not found/.test(l) && !/libcublas(Lt)?\.so/.test(l));
      t.deepEqual(missing, [], ldd);
    });

    test(`${rel} loads after the cuBLAS search; without a GPU it says "no CUDA device"`, (t) => {
      if (gpuHere(file)) {
        t.is(loadCudaAddon(file).backend, 'cuda');
        return;
      }
      const e = t.throws(() => loadCudaAddon(file, 'the test\'s'));
      t.regex(e!.message, /device 'cuda' could not be loaded from .*: no CUDA device on this machine: no usable CUDA device \(cudaGetDeviceCount: .+\) \(addon: the test's; cuBLAS: \S+libcublas\.so\.\d+, from .+\)/);
      // the cuBLAS named is the one mapped into this process
      const cublas = /cuBLAS: (\S+libcublas\.so\.\d+)/.exec(e!.message)![1];
      const maps = fs.readFileSync('/proc/self/maps', 'utf8');
      t.true(maps.includes(fs.realpathSync(cublas)), `${cublas} is loaded`);
    });
  }

  const gpu = gpuHere(built[0]);
  test('device cuda: tensors and models get the JS error, not a crash', (t) => {
    if (gpu) {
      t.is(cuda().backend, 'cuda');
      t.deepEqual(Array.from(Tensor.from([1, 2], [2], 'cuda').toArray()), [1, 2]);
      return;
    }
    t.throws(() => cuda(), { message: /no CUDA device/ });
    t.throws(() => Tensor.zeros([2, 3], 'cuda'), { message: /no CUDA device/ });
    t.throws(() => Tensor.from([1, 2, 3], [3], 'cuda'), { message: /no CUDA device/ });
    t.throws(() => new Linear(4, 2, new Rng(0), { device: 'cuda' }), { message: /no CUDA device/ });
    t.throws(() => Tensor.from([1], [1]).to('cuda'), { message: /no CUDA device/ });
    // and the CPU backend is untouched
    t.deepEqual(Array.from(Tensor.from([1, 2], [2]).toArray()), [1, 2]);
  });

  test('pstal train --device cuda: exit code 1 and "no CUDA device", no stack trace, no signal', (t) => {
    if (gpu) {
      t.pass('a GPU is here: training on it is tested by test/gpu/cuda.test.ts');
      return;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-cuda-cli-'));
    const bin = path.join(ROOT, 'bin', 'pstal.js');
    const env = { ...process.env, PSTAL_TS: '1' };
    try {
      const s = spawnSync(process.execPath, [bin, 'synth', '--out', 'data', '--dim', '16', '--videos', '4', '--duration-scale', '0.2', '--quiet'], { cwd: dir, encoding: 'utf8', env });
      t.is(s.status, 0, s.stderr);
      const r = spawnSync(process.execPath, [bin, 'train', '--data', 'data', '--out', 'run', '--stage', '1', '--dim', '16', '--device', 'cuda', '--iterations', '1', '--quiet'], { cwd: dir, encoding: 'utf8', env });
      t.is(r.signal, null, 'not killed by a signal');
      t.is(r.status, 1, r.stderr);
      t.regex(r.stderr, /^pstal train: .*no CUDA device/m);
      t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
      // and --version says which addon and cuBLAS it tried
      const v = spawnSync(process.execPath, [bin, '--version'], { cwd: dir, encoding: 'utf8', env });
      t.is(v.status, 0, v.stderr);
      t.regex(v.stdout, /^cpu: \S+pstal\.node \((local build|prebuilt|PSTAL_ADDON)\), GEMM kernel \w+, SIMD \w+, \d+ threads$/m);
      t.regex(v.stdout, /^cuda: not available: .*no CUDA device on this machine.*\(addon: .+; cuBLAS: .+\)$/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
