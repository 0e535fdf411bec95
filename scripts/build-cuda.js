#!/usr/bin/env node
// Builds the optional CUDA backend (CMakeLists.txt, through cmake-js) into build-cuda/ when a
// CUDA toolkit with cuBLAS is present; otherwise says why it is skipped and exits 0, so that
// `npm install` works the same on machines without a GPU toolkit.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const optional = process.argv.includes('--optional');

function skip(why) {
  console.log(`pstal: CUDA backend skipped: ${why}`);
  process.exit(0);
}

function findNvcc() {
  const candidates = [process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin', 'nvcc'), '/usr/local/cuda/bin/nvcc'];
  try {
    candidates.push(execFileSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).trim());
  } catch {}
  return candidates.find((c) => c && fs.existsSync(c));
}

const nvcc = findNvcc();
if (!nvcc) skip('nvcc was not found (set CUDA_HOME or put nvcc on PATH)');
const cudaRoot = path.resolve(path.dirname(fs.realpathSync(nvcc)), '..');
const libDirs = ['lib64', 'lib', 'targets/x86_64-linux/lib', 'targets/sbsa-linux/lib'].map((d) => path.join(cudaRoot, d));
const hasCublas = libDirs.some((d) => fs.existsSync(d) && fs.readdirSync(d).some((f) => /^libcublas\.so/.test(f)));
if (!hasCublas) skip(`the CUDA toolkit at ${cudaRoot} has no cuBLAS (libcublas.so)`);
const cuSources = fs.existsSync(path.join(root, 'native', 'cuda')) ? fs.readdirSync(path.join(root, 'native', 'cuda')).filter((f) => /\.(cu|cc)$/.test(f)) : [];
if (cuSources.length === 0) skip('native/cuda has no sources yet');
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  skip('cmake-js is not installed (it is a development dependency: npm install in a checkout)');
}
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build-cuda', '--CDCMAKE_CUDA_COMPILER=' + nvcc], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  if (optional) skip('the CUDA build failed (see above); the CPU backend is unaffected');
  process.exit(r.status || 1);
}
