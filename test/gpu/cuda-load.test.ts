/**
 * The CUDA addon as built here (scripts/build-cuda.js: build-cuda/Release/pstal_cuda.node, or the
 * prebuild prebuilds/<platform>-<arch>/pstal_cuda.napi.cuda) links completely and is loaded, GPU or
 * not: every symbol resolves (cuBLAS through its rpath, from the toolkit or a pip wheel). On a
 * machine without a usable GPU, asking for device 'cuda' (a tensor, a model, `pstal train --device
 * cuda`) gives the JS error "no CUDA device", never a crash; on a machine with one, the addon loads
 * and says it is the CUDA backend. Skipped, saying why, where no CUDA build exists.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CUDA_ADDON_FILE, CUDA_PREBUILD_FILE, cuda, loadCudaAddon } from '../../lib/runtime/backend';
import { Tensor } from '../../lib/tensor/tensor';
import { Linear } from '../../lib/nn/layers';
import { Rng } from '../../lib/util/rng';

const ROOT = path.resolve(__dirname, '..', '..');

test('node-gyp-build never takes the CUDA prebuild for the CPU addon', (t) => {
  // A package whose prebuilds folder holds only the CUDA addon: node-gyp-build must find nothing
  // (its `*.node` rule), so PREBUILDS_ONLY installs without a CPU prebuild fail clearly.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-prebuild-name-'));
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'probe', version: '1.0.0' }));
    const pre = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
    fs.mkdirSync(pre, { recursive: true });
    fs.writeFileSync(path.join(pre, path.basename(CUDA_PREBUILD_FILE)), 'not loaded');
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const ngb = require('node-gyp-build');
    t.throws(() => ngb.path(dir), { message: /No native build was found/ });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
const built = [CUDA_ADDON_FILE, CUDA_PREBUILD_FILE].filter((f) => fs.existsSync(f));

/** Whether this machine has a usable GPU: the addon itself decides (cudaGetDeviceCount). */
function gpuHere(file: string): boolean {
  try {
    loadCudaAddon(file);
    return true;
  } catch (e) {
    if (/no CUDA device/.test((e as Error).message)) return false;
    throw e; // any other load failure (an unresolved symbol, a missing library) is this test's failure
  }
}

if (built.length === 0) {
  test.skip('the CUDA addon loads (skipped: no CUDA build here; `npm run build:cuda` makes build-cuda/Release/pstal_cuda.node where nvcc is)', () => {});
} else {
  for (const file of built) {
    test(`${path.relative(ROOT, file)} has every shared library it needs`, (t) => {
      // ldd names each dependency; "not found" would make dlopen fail on every machine.
      const out = execFileSync('ldd', [file], { encoding: 'utf8' });
      t.notRegex(out, /not found/, out);
      t.regex(out, /libcublas\.so/, 'linked against cuBLAS');
    });

    test(`${path.relative(ROOT, file)} loads; without a GPU it says "no CUDA device"`, (t) => {
      if (gpuHere(file)) {
        t.is(loadCudaAddon(file).backend, 'cuda');
        return;
      }
      const e = t.throws(() => loadCudaAddon(file));
      t.regex(e!.message, /device 'cuda' could not be loaded from .*: no CUDA device on this machine: no usable CUDA device \(cudaGetDeviceCount: .+\)/);
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
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
