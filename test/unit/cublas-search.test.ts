/**
 * lib/runtime/cublas.ts: where cuBLAS is looked for at run time, in order (PSTAL_CUBLAS, the CUDA
 * toolkit, pip wheels), what the error says when it is nowhere, and the ELF reader that tells which
 * cuBLAS an addon needs and that it carries no rpath. Fake library files in temporary folders: no
 * GPU, toolkit or cuBLAS needed.
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cublasMajorOf, cublasNotFound, elfDynamic, findCublas, sitePackages } from '../../lib/runtime/cublas';
import { cpuAddonFile } from '../../lib/runtime/native';

function tree(files: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-cublas-'));
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), '');
  }
  return dir;
}

const NOTHING = { PATH: '', HOME: '/nonexistent' } as NodeJS.ProcessEnv;

test('PSTAL_CUBLAS first: the library itself (libcublasLt beside it), or a folder, or its lib64/', (t) => {
  const dir = tree(['x/libcublas.so.13', 'x/libcublasLt.so.13', 'root/lib64/libcublas.so.13', 'toolkit/lib64/libcublas.so.13']);
  try {
    const toolkits = [path.join(dir, 'toolkit')];
    const file = findCublas({ major: 13, env: { ...NOTHING, PSTAL_CUBLAS: path.join(dir, 'x', 'libcublas.so.13') }, toolkits, sites: [] });
    t.deepEqual(file.found, { library: path.join(dir, 'x', 'libcublas.so.13'), lt: path.join(dir, 'x', 'libcublasLt.so.13'), from: 'PSTAL_CUBLAS' });
    const folder = findCublas({ major: 13, env: { ...NOTHING, PSTAL_CUBLAS: path.join(dir, 'x') }, toolkits, sites: [] });
    t.is(folder.found?.library, path.join(dir, 'x', 'libcublas.so.13'));
    const root = findCublas({ major: 13, env: { ...NOTHING, PSTAL_CUBLAS: path.join(dir, 'root') }, toolkits, sites: [] });
    t.deepEqual(root.found, { library: path.join(dir, 'root', 'lib64', 'libcublas.so.13'), lt: undefined, from: 'PSTAL_CUBLAS' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a PSTAL_CUBLAS that holds no cuBLAS is an error, even where the toolkit has one', (t) => {
  const dir = tree(['empty/README', 'toolkit/lib64/libcublas.so.13']);
  try {
    const r = findCublas({ major: 13, env: { ...NOTHING, PSTAL_CUBLAS: path.join(dir, 'empty') }, toolkits: [path.join(dir, 'toolkit')], sites: [] });
    t.is(r.found, undefined);
    t.is(r.error, `PSTAL_CUBLAS=${path.join(dir, 'empty')} is neither libcublas.so.13 nor a folder holding it`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the toolkit before pip wheels; lib64/, lib/ and targets/<arch>-linux/lib/; only the major asked for', (t) => {
  const target = process.arch === 'arm64' ? 'sbsa-linux' : 'x86_64-linux';
  const dir = tree([
    'cuda-12/lib64/libcublas.so.12',
    'cuda-13/targets/' + target + '/lib/libcublas.so.13',
    'cuda-13/targets/' + target + '/lib/libcublasLt.so.13',
    'site/nvidia/cu13/lib/libcublas.so.13',
  ]);
  try {
    const toolkits = [path.join(dir, 'missing'), path.join(dir, 'cuda-12'), path.join(dir, 'cuda-13')];
    const r = findCublas({ major: 13, env: NOTHING, toolkits, sites: [path.join(dir, 'site')] });
    t.is(r.found?.library, path.join(dir, 'cuda-13', 'targets', target, 'lib', 'libcublas.so.13'));
    t.is(r.found?.lt, path.join(dir, 'cuda-13', 'targets', target, 'lib', 'libcublasLt.so.13'));
    t.is(r.found?.from, `the CUDA toolkit at ${path.join(dir, 'cuda-13')}`);
    t.deepEqual(r.looked, ['PSTAL_CUBLAS (not set)']);
    const r12 = findCublas({ major: 12, env: NOTHING, toolkits, sites: [] });
    t.is(r12.found?.library, path.join(dir, 'cuda-12', 'lib64', 'libcublas.so.12'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pip wheels: nvidia/cu13/lib (nvidia-cublas) and nvidia/cublas/lib (nvidia-cublas-cu12), in site order', (t) => {
  const dir = tree(['a/nvidia/cublas/lib/libcublas.so.12', 'b/nvidia/cu13/lib/libcublas.so.13', 'b/nvidia/cu13/lib/libcublasLt.so.13', 'c/nvidia/cublas/lib/libcublas.so.13']);
  try {
    const sites = ['a', 'b', 'c'].map((s) => path.join(dir, s));
    const r13 = findCublas({ major: 13, env: NOTHING, toolkits: [], sites });
    t.deepEqual(r13.found, { library: path.join(dir, 'b', 'nvidia', 'cu13', 'lib', 'libcublas.so.13'), lt: path.join(dir, 'b', 'nvidia', 'cu13', 'lib', 'libcublasLt.so.13'), from: `the pip wheel in ${path.join(dir, 'b')}` });
    const r12 = findCublas({ major: 12, env: NOTHING, toolkits: [], sites });
    t.is(r12.found?.library, path.join(dir, 'a', 'nvidia', 'cublas', 'lib', 'libcublas.so.12'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an active virtualenv (VIRTUAL_ENV) and conda (CONDA_PREFIX) are searched, without python3 on PATH', (t) => {
  const dir = tree(['venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcublas.so.13', 'conda/lib/python3.11/site-packages/x']);
  try {
    const env = { ...NOTHING, VIRTUAL_ENV: path.join(dir, 'venv'), CONDA_PREFIX: path.join(dir, 'conda') };
    const sites = sitePackages(env);
    t.true(sites.includes(path.join(dir, 'venv', 'lib', 'python3.12', 'site-packages')), sites.join(', '));
    t.true(sites.includes(path.join(dir, 'conda', 'lib', 'python3.11', 'site-packages')), sites.join(', '));
    const r = findCublas({ major: 13, env, toolkits: [] });
    t.is(r.found?.from, `the pip wheel in ${path.join(dir, 'venv', 'lib', 'python3.12', 'site-packages')}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('found nowhere: the message lists where it looked and what to install', (t) => {
  const dir = tree(['toolkit/lib64/libcublas.so.12', 'site/nvidia/cublas/lib/libcublas.so.12']);
  try {
    const r = findCublas({ major: 13, env: NOTHING, toolkits: [path.join(dir, 'toolkit'), path.join(dir, 'gone')], sites: [path.join(dir, 'site')] });
    t.is(r.found, undefined);
    t.is(r.error, undefined);
    const msg = cublasNotFound(13, r, 'libcublas.so.13: cannot open shared object file: No such file or directory');
    t.regex(msg, /^cuBLAS \(libcublas\.so\.13\) was not found; looked in:\n/);
    t.true(msg.includes('    - PSTAL_CUBLAS (not set)\n'), msg);
    t.true(msg.includes(`under ${path.join(dir, 'toolkit')}\n`), msg);
    t.true(msg.includes(`pip wheels (nvidia/cu13/lib, nvidia/cublas/lib) in ${path.join(dir, 'site')}\n`), msg);
    t.regex(msg, /the library path \(LD_LIBRARY_PATH=.*, ldconfig\): libcublas\.so\.13: cannot open shared object file/);
    t.regex(msg, /`pip install nvidia-cublas==13\.\*`.*the CUDA 13 toolkit, or set PSTAL_CUBLAS/);
    t.regex(msg, /Device 'cpu' works without it/);
    t.regex(cublasNotFound(12, r), /`pip install nvidia-cublas-cu12`/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('elfDynamic reads an addon\'s DT_NEEDED and rpath entries (the CPU addon, checked against readelf)', (t) => {
  const file = cpuAddonFile();
  const dyn = elfDynamic(file);
  t.truthy(dyn);
  t.true(dyn!.needed.some((n) => /^libc\.so\.\d+$/.test(n)), dyn!.needed.join(', '));
  t.is(cublasMajorOf(file), undefined, 'the CPU addon needs no cuBLAS');
  const readelf = spawnSync('readelf', ['-d', file], { encoding: 'utf8' });
  if (readelf.status === 0) {
    const needed = [...readelf.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    t.deepEqual(dyn!.needed, needed);
    const paths = [...readelf.stdout.matchAll(/\((RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]*)\]/g)].map((m) => m[2]);
    t.deepEqual([...dyn!.rpath, ...dyn!.runpath], paths.flatMap((p) => p.split(':')));
  }
  const notElf = path.join(os.tmpdir(), `pstal-not-elf-${process.pid}`);
  fs.writeFileSync(notElf, 'not an ELF file, but long enough to hold a header of sixty-four bytes.....');
  try {
    t.is(elfDynamic(notElf), undefined);
    t.is(cublasMajorOf(notElf), undefined);
  } finally {
    fs.rmSync(notElf);
  }
});
