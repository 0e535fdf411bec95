/**
 * The CPU kernels are plain C++: test/native/kernels_test.cc calls them through the argument
 * structs of native/ops/*.h, compiled with the system's C++ compiler against native/cpu and
 * native/common/parallel.cc only (no Node headers, no node-addon-api), and its checks must pass.
 * Skipped, saying why, where there is no C++ compiler.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const cxx = ['c++', 'g++', 'clang++'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);

if (!cxx) {
  test.skip('CPU kernels build and run without Node (skipped: no C++ compiler on PATH)', () => {});
} else {
  test('CPU kernels build and run without Node', (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-kernels-'));
    try {
      const exe = path.join(dir, 'kernels_test');
      const sources = ['test/native/kernels_test.cc', 'native/cpu/elementwise.cc', 'native/cpu/tensor.cc', 'native/cpu/norm.cc', 'native/cpu/simd.cc', 'native/common/parallel.cc'];
      execFileSync(cxx, ['-std=c++20', '-O1', '-pthread', '-Inative', '-o', exe, ...sources], { cwd: ROOT, stdio: 'pipe' });
      const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 60_000 }); // a deadlocked pool is a failure, not a hang
      t.is(r.status, 0, r.stdout + r.stderr);
      t.notRegex(r.stdout, /FAIL/);
      t.true(r.stdout.split('\n').filter((l) => l.startsWith('ok ')).length >= 10, r.stdout);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
