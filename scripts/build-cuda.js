#!/usr/bin/env node
// Builds the optional CUDA backend (CMakeLists.txt, through cmake-js) into build-cuda/ when nvcc
// and cuBLAS are present; otherwise says why it is skipped and exits 0 (with --optional), so that
// `npm install` works the same on machines without a GPU toolkit. No GPU is needed to build.
//
// cuBLAS is looked for, in order, in:
//   1. the CUDA toolkit beside nvcc (include/cublas_v2.h, lib64/libcublas.so*);
//   2. CUBLAS_ROOT (its include/ and lib/ or lib64/);
//   3. an NVIDIA pip wheel in any site-packages of python3 (nvidia/cu13/, nvidia/cublas/: where
//      PyTorch users have it) or in this package's own venv, build-cublas/venv;
//   4. failing all three, that venv is created and the wheel pip-installed into it
//      (`nvidia-cublas==<major>.*` for CUDA 13+, `nvidia-cublas-cu12` before; PSTAL_CUBLAS_PIP_SPEC
//      overrides the requirement, PSTAL_CUBLAS_PIP=0 turns this step off).
// The addon gets no rpath: cuBLAS is looked for again at run time (lib/runtime/cublas.ts), so the
// same binary works wherever cuBLAS is installed, and is loaded before the addon.
//
// Environment: PSTAL_CUDA_BUILD=0 skips the CUDA backend altogether; PSTAL_CUDA_ARCH picks the
// GPU architectures (CMAKE_CUDA_ARCHITECTURES syntax, e.g. `90-real` or `80-real;90-real;90-virtual`;
// default: `80-virtual` at npm install, to keep its compile time short, else CMakeLists.txt's:
// sm_80, sm_86, sm_89, sm_90, sm_100 binaries and compute_100 PTX);
// PSTAL_CUDA_JOBS the parallel compile jobs (default: the core count).
//
// Flags: --optional (npm install: never fail), --package (also copy the addon, stripped, into the
// optional platform package npm/<platform>-<arch>-cuda/, `@pstal/<platform>-<arch>-cuda`, which
// lib/runtime/backend.ts loads when there is no local build; `npm pack ./npm/linux-x64-cuda` then
// makes its tarball), --print-cublas (print the cuBLAS found as JSON and exit).
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const optional = process.argv.includes('--optional');
const packageIt = process.argv.includes('--package');
// Not under build-cuda/, which cmake-js deletes when it falls back to a full rebuild.
const VENV = path.join(root, 'build-cublas', 'venv');
const PACKAGE_DIR = path.join(root, 'npm', `${process.platform}-${process.arch}-cuda`);

function skip(why) {
  console.log(`pstal: CUDA backend skipped: ${why}`);
  process.exit(0);
}

function fail(why) {
  if (optional) skip(why);
  console.error(`pstal: CUDA backend: ${why}`);
  process.exit(1);
}

function findNvcc() {
  const candidates = [process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin', 'nvcc'), '/usr/local/cuda/bin/nvcc'];
  try {
    candidates.push(execFileSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).trim());
  } catch {}
  return candidates.find((c) => c && fs.existsSync(c));
}

/** The toolkit's root and major version, from `nvcc --version` (nvcc may be a wrapper script). */
function toolkit(nvcc) {
  let major = 0;
  try {
    const m = /release (\d+)\.(\d+)/.exec(execFileSync(nvcc, ['--version'], { encoding: 'utf8' }));
    if (m) major = Number(m[1]);
  } catch {}
  let dir = path.resolve(path.dirname(fs.realpathSync(nvcc)), '..');
  // A wrapper such as /usr/local/bin/nvcc (`exec /usr/local/cuda-13.0/bin/nvcc "$@"`): follow it.
  if (!fs.existsSync(path.join(dir, 'include', 'cuda_runtime.h'))) {
    const text = fs.readFileSync(nvcc, 'utf8').slice(0, 4096);
    const m = /(\/\S+)\/bin\/nvcc\b/.exec(text);
    if (m && fs.existsSync(path.join(m[1], 'include', 'cuda_runtime.h'))) dir = m[1];
  }
  return { root: dir, major };
}

/** { include, library } when `dir` holds cuBLAS's header and a libcublas.so[.major] for this CUDA major. */
function cublasIn(dir, major) {
  if (!dir || !fs.existsSync(dir)) return undefined;
  const sub = (names) => names.map((d) => path.join(dir, d)).filter((d) => fs.existsSync(d));
  const include = sub(['include', 'targets/x86_64-linux/include', 'targets/sbsa-linux/include']).find((d) =>
    fs.existsSync(path.join(d, 'cublas_v2.h')),
  );
  if (!include) return undefined;
  for (const lib of sub(['lib64', 'lib', 'targets/x86_64-linux/lib', 'targets/sbsa-linux/lib'])) {
    const files = fs.readdirSync(lib).filter((f) => /^libcublas\.so(\.\d+)*$/.test(f));
    // The versioned name of this major first (wheels ship only libcublas.so.13), then the plain one.
    const pick = files.find((f) => major && f === `libcublas.so.${major}`) || files.find((f) => f === 'libcublas.so');
    if (pick) return { include, library: path.join(lib, pick), libdir: lib };
  }
  return undefined;
}

function sitePackages(python) {
  try {
    const out = execFileSync(
      python,
      ['-c', 'import sys, site, json; print(json.dumps(sys.path + [site.getusersitepackages()]))'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20000 },
    );
    return JSON.parse(out).filter((d) => d && fs.existsSync(d));
  } catch {
    return [];
  }
}

function venvSites() {
  const lib = path.join(VENV, 'lib');
  if (!fs.existsSync(lib)) return [];
  return fs.readdirSync(lib).map((p) => path.join(lib, p, 'site-packages')).filter((d) => fs.existsSync(d));
}

/** cuBLAS from a wheel under any of these site-packages folders. */
function cublasInWheels(sites, major) {
  const layouts = [major ? `nvidia/cu${major}` : undefined, 'nvidia/cublas'].filter(Boolean);
  for (const site of sites)
    for (const l of layouts) {
      const found = cublasIn(path.join(site, l), major);
      if (found) return { ...found, from: `the pip wheel in ${site}` };
    }
  return undefined;
}

function findCublas(tk, { install }) {
  const inToolkit = cublasIn(tk.root, tk.major);
  if (inToolkit) return { ...inToolkit, from: `the CUDA toolkit at ${tk.root}` };
  if (process.env.CUBLAS_ROOT) {
    const r = cublasIn(process.env.CUBLAS_ROOT, tk.major);
    if (r) return { ...r, from: `CUBLAS_ROOT=${process.env.CUBLAS_ROOT}` };
    console.log(`pstal: CUBLAS_ROOT=${process.env.CUBLAS_ROOT} has no include/cublas_v2.h with lib/libcublas.so*`);
  }
  const pythons = [process.env.PYTHON, 'python3'].filter(Boolean);
  const sites = [...new Set([...venvSites(), ...pythons.flatMap(sitePackages)])];
  const wheel = cublasInWheels(sites, tk.major);
  if (wheel || !install) return wheel;
  if (process.env.PSTAL_CUBLAS_PIP === '0') return undefined;
  const spec = process.env.PSTAL_CUBLAS_PIP_SPEC || (tk.major >= 13 ? `nvidia-cublas==${tk.major}.*` : `nvidia-cublas-cu${tk.major || 12}`);
  console.log(`pstal: no cuBLAS in the toolkit, CUBLAS_ROOT or python3's site-packages; installing ${spec} into ${VENV}`);
  const py = pythons.find((p) => spawnSync(p, ['--version'], { stdio: 'ignore' }).status === 0);
  if (!py) return undefined;
  if (!fs.existsSync(path.join(VENV, 'bin', 'pip'))) {
    fs.mkdirSync(path.dirname(VENV), { recursive: true });
    const v = spawnSync(py, ['-m', 'venv', VENV], { stdio: 'inherit' });
    if (v.status !== 0) {
      console.log('pstal: `python3 -m venv` failed (is the venv module installed?)');
      return undefined;
    }
  }
  const p = spawnSync(path.join(VENV, 'bin', 'pip'), ['install', '--disable-pip-version-check', '-q', spec], {
    stdio: 'inherit',
    timeout: 15 * 60 * 1000,
  });
  if (p.status !== 0) {
    console.log(`pstal: pip install ${spec} failed`);
    return undefined;
  }
  return cublasInWheels(venvSites(), tk.major);
}

// ---- main ------------------------------------------------------------------------------------

if (process.env.PSTAL_CUDA_BUILD === '0') skip('PSTAL_CUDA_BUILD=0');
const nvcc = findNvcc();
if (!nvcc) {
  skip('nvcc was not found (set CUDA_HOME or put nvcc on PATH); device \'cuda\' can come from the @pstal/linux-x64-cuda package');
}
const tk = toolkit(nvcc);
if (process.argv.includes('--print-cublas')) {
  console.log(JSON.stringify(findCublas(tk, { install: false }) || null));
  process.exit(0);
}
const cuSources = fs.existsSync(path.join(root, 'native', 'cuda')) ? fs.readdirSync(path.join(root, 'native', 'cuda')).filter((f) => /\.(cu|cc)$/.test(f)) : [];
if (cuSources.length === 0) skip('native/cuda has no sources');
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  skip('cmake-js is not installed (it is a development dependency: npm install in a checkout)');
}
if (spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status !== 0) skip('cmake was not found on PATH');
const cublas = findCublas(tk, { install: true });
if (!cublas)
  fail(
    `no cuBLAS was found for CUDA ${tk.major || '?'} (not in ${tk.root}, CUBLAS_ROOT or a pip wheel such as nvidia-cublas), ` +
      'and none could be pip-installed; set CUBLAS_ROOT or `pip install nvidia-cublas`',
  );
console.log(`pstal: cuBLAS from ${cublas.from}: ${cublas.library}`);

const defs = [
  `--CDCMAKE_CUDA_COMPILER=${path.join(tk.root, 'bin', 'nvcc')}`,
  `--CDCUDAToolkit_ROOT=${tk.root}`,
  `--CDPSTAL_CUBLAS_INCLUDE_DIR=${cublas.include}`,
  `--CDPSTAL_CUBLAS_LIBRARY=${cublas.library}`,
];
// npm install (--optional) compiles PTX for compute 8.0 only: one pass per file (no ptxas), and the
// driver compiles it for any GPU from the A100 on when it first loads. An explicit build or a
// --package takes CMakeLists.txt's list (sm_80, 86, 89, 90, 100 binaries plus PTX).
const arch = process.env.PSTAL_CUDA_ARCH || (optional && !packageIt ? '80-virtual' : '');
if (arch) defs.push(`--CDCMAKE_CUDA_ARCHITECTURES=${arch}`);
const jobs = String(Number(process.env.PSTAL_CUDA_JOBS) || os.cpus().length || 1);
// configure every time (so a changed PSTAL_CUDA_ARCH or cuBLAS takes effect; cmake keeps what is
// unchanged), then build incrementally.
for (const step of [['configure', ...defs], ['build', '--parallel', jobs]]) {
  const r = spawnSync(process.execPath, [cmakeJs, ...step, '--out', 'build-cuda'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail(`the CUDA build failed at cmake-js ${step[0]} (see above); the CPU backend is unaffected`);
}
const built = path.join(root, 'build-cuda', 'Release', 'pstal_cuda.node');
if (!fs.existsSync(built)) fail(`the build made no ${built}`);

if (packageIt) {
  const own = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const pkgFile = path.join(PACKAGE_DIR, 'package.json');
  if (!fs.existsSync(pkgFile)) fail(`there is no ${path.relative(root, pkgFile)} for ${process.platform}-${process.arch}`);
  const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
  // the two are one release: the CUDA addon's ops are the ones this version's lib/ calls
  if (pkg.version !== own.version || own.optionalDependencies?.[pkg.name] !== own.version)
    fail(`${pkg.name} is ${pkg.version} and pstal's optionalDependencies ask for ${own.optionalDependencies?.[pkg.name]}: both must be pstal's version, ${own.version}`);
  const dest = path.join(PACKAGE_DIR, 'pstal_cuda.node');
  fs.copyFileSync(built, dest);
  spawnSync('strip', ['--strip-unneeded', dest], { stdio: 'inherit' });
  console.log(`pstal: ${path.relative(root, dest)} (${pkg.name}@${pkg.version}, ${fs.statSync(dest).size} bytes, architectures ${arch || 'of CMakeLists.txt'}); \`npm pack ./${path.relative(root, PACKAGE_DIR)}\` makes its tarball`);
}
