/**
 * Packaging: `npm run prebuild` (prebuildify) makes prebuilds/<platform>-<arch>, and the tarball `npm pack`
 * makes installs into an empty folder and loads its prebuilt binary without compiling anything
 * (PREBUILDS_ONLY=1 refuses any other binary; no compiler is given a chance to run).
 *
 * Everything happens in a staging copy unpacked from `npm pack`: prebuildify runs `node-gyp rebuild`,
 * which wipes build/, and the other test files running beside this one load the addon from there.
 */
import test from 'ava';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');

test('npm pack tarball with prebuilds installs into an empty folder and loads them (PREBUILDS_ONLY=1)', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-pack-'));
  try {
    // 1. the source tarball, unpacked into a staging folder that borrows the repo's dev dependencies
    const sourceTgz = execFileSync('npm', ['pack', '--pack-destination', tmp, '--silent'], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop()!;
    execFileSync('tar', ['xzf', path.join(tmp, sourceTgz), '-C', tmp]);
    const staging = path.join(tmp, 'package');
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(staging, 'node_modules'), 'dir');
    fs.rmSync(path.join(staging, 'prebuilds'), { recursive: true, force: true });

    // 2. `npm run prebuild` there
    // PSTAL_CUDA_BUILD=0: the CUDA prebuild (minutes of nvcc) is test/gpu/cuda-load.test.ts's business.
    execFileSync('npm', ['run', 'prebuild', '--silent'], { cwd: staging, stdio: 'pipe', env: { ...process.env, PSTAL_CUDA_BUILD: '0' } });
    const prebuildDir = path.join(staging, 'prebuilds', `${process.platform}-${process.arch}`);
    t.true(fs.existsSync(prebuildDir) && fs.readdirSync(prebuildDir).some((f) => f.endsWith('.node')), 'prebuilds/<platform>-<arch>/*.node exists');

    // 3. the tarball users get, prebuilds included
    const dist = path.join(tmp, 'dist');
    fs.mkdirSync(dist);
    const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dist, '--silent'], { cwd: staging, encoding: 'utf8' }).trim().split('\n').pop()!;
    const tarball = path.join(dist, packed);
    t.true(fs.existsSync(tarball), `tarball ${tarball}`);

    // 4. install it into an empty app with every compiler replaced by a failing stub
    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const noCompilers = path.join(tmp, 'bin');
    fs.mkdirSync(noCompilers);
    for (const tool of ['cc', 'c++', 'g++', 'gcc', 'make', 'node-gyp'])
      fs.writeFileSync(path.join(noCompilers, tool), '#!/bin/sh\necho "compiler called: $0" >&2; exit 1\n', { mode: 0o755 });
    const env = { ...process.env, PATH: `${noCompilers}:${process.env.PATH}`, PREBUILDS_ONLY: '1', PSTAL_CUDA_BUILD: '0', npm_config_build_from_source: 'false' };
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, env, stdio: 'pipe' });
    const out = execFileSync(
      process.execPath,
      ['-e', "const p = require('pstal'); const t = p.Tensor.from([1, 2, 3, 4], [2, 2]); console.log(JSON.stringify(p.ops.matmul(t, t).toNested()), p.native.cpu().gemm_info().kernel)"],
      { cwd: app, env, encoding: 'utf8' },
    );
    t.regex(out, /\[\[7,10\],\[15,22\]\]/);
    t.false(fs.existsSync(path.join(app, 'node_modules', 'pstal', 'build')), 'nothing was compiled at install');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
