/**
 * Packaging: `npm run prebuild` makes prebuilds/linux-x64, and the tarball `npm pack` makes
 * installs into an empty folder and loads its prebuilt binary without compiling anything
 * (PREBUILDS_ONLY=1 refuses any other binary; no compiler is given a chance to run).
 */
import test from 'ava';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..');

test('npm pack tarball installs into an empty folder and loads the prebuild (PREBUILDS_ONLY=1)', (t) => {
  const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!fs.existsSync(prebuildDir) || !fs.readdirSync(prebuildDir).some((f) => f.endsWith('.node')))
    execFileSync('npm', ['run', 'prebuild'], { cwd: root, stdio: 'pipe' });
  t.true(fs.readdirSync(prebuildDir).some((f) => f.endsWith('.node')), 'prebuilds/<platform>-<arch>/*.node exists');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-pack-'));
  try {
    const packed = execFileSync('npm', ['pack', '--pack-destination', tmp, '--silent'], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop()!;
    const tarball = path.join(tmp, packed);
    t.true(fs.existsSync(tarball), `tarball ${tarball}`);
    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    // A compiler on PATH would let a silent source build hide a missing prebuild: hide them all.
    const noCompilers = path.join(tmp, 'bin');
    fs.mkdirSync(noCompilers);
    for (const tool of ['cc', 'c++', 'g++', 'gcc', 'make', 'node-gyp'])
      fs.writeFileSync(path.join(noCompilers, tool), '#!/bin/sh\necho "compiler called: $0" >&2; exit 1\n', { mode: 0o755 });
    const env = { ...process.env, PATH: `${noCompilers}:${process.env.PATH}`, PREBUILDS_ONLY: '1', npm_config_build_from_source: 'false' };
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
