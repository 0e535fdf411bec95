/**
 * The CUDA sources compile: every native/cuda/*.cu and native/ops/*.cu is compiled (nvcc -c, sm_90)
 * wherever nvcc is installed, GPU or not, so a syntax or type error in a kernel never lands unseen
 * on machines that cannot run it. Sources that include cuBLAS are compiled where its header is
 * found as the build finds it (toolkit, CUBLAS_ROOT, pip wheel), and are otherwise listed as
 * skipped with that reason. One test per file, so a failure
 * names the file; at most two compiles run at once (nvcc takes a core and ~5-10 s per file).
 * Also, without nvcc: the CUDA addon registers every op name the CPU addon registers, and the
 * unary kinds agree between lib/ops/elementwise.ts, native/cpu and native/cuda.
 */
import test from 'ava';
import { execFile, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const CUDA_DIR = path.join(ROOT, 'native', 'cuda');

function findNvcc(): string | undefined {
  const candidates = [process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin', 'nvcc'), '/usr/local/cuda/bin/nvcc'];
  try {
    candidates.push(execFileSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).trim());
  } catch {
    // not on PATH
  }
  return candidates.find((c): c is string => !!c && fs.existsSync(c));
}

/** The folder holding node_api.h: beside the running node, the system's, or node-gyp's cache. */
function findNodeHeaders(): string | undefined {
  const version = process.version.replace(/^v/, '');
  const candidates = [
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
    process.env.npm_config_devdir && path.join(process.env.npm_config_devdir, version, 'include', 'node'),
    path.join(os.homedir(), '.cache', 'node-gyp', version, 'include', 'node'),
    path.join(os.homedir(), '.node-gyp', version, 'include', 'node'),
  ];
  return candidates.find((c): c is string => !!c && fs.existsSync(path.join(c, 'node_api.h')));
}

function findAddonApi(): string | undefined {
  try {
    return path.dirname(require.resolve('node-addon-api/package.json', { paths: [ROOT] }));
  } catch {
    return undefined;
  }
}

/**
 * The folder holding cuBLAS's header, found as the build finds it (scripts/build-cuda.js: the
 * toolkit, CUBLAS_ROOT, or a pip wheel such as the one the build installs into build-cuda/).
 */
function cublasInclude(): string | undefined {
  try {
    const out = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-cuda.js'), '--print-cublas'], { encoding: 'utf8' });
    const found = JSON.parse(out.trim().split('\n').pop()!) as { include: string } | null;
    return found?.include;
  } catch {
    return undefined;
  }
}

const nvcc = findNvcc();
const nodeHeaders = findNodeHeaders();
const addonApi = findAddonApi();
const sources = [CUDA_DIR, path.join(ROOT, 'native', 'ops')]
  .flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.cu')).sort().map((f) => path.relative(path.join(ROOT, 'native'), path.join(d, f))) : []));

// Two compiles at a time.
let running = 0;
const waiting: (() => void)[] = [];
async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= 2) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

// A static check that needs no nvcc: the CUDA addon registers every op the CPU addon does (the
// registries are built from PSTAL_OP(name) in these files), so lib/ops works on either device.
const CPU_ONLY_OPS = new Set(['synth_features']); // data generation, CPU only
function registeredOps(files: string[]): Set<string> {
  const names = new Set<string>();
  for (const f of files) for (const m of fs.readFileSync(f, 'utf8').matchAll(/^\s*PSTAL_OP\((\w+)\)/gm)) names.add(m[1]);
  return names;
}
const inDir = (dir: string, ext: string): string[] =>
  fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(ext)).map((f) => path.join(dir, f)) : [];

test('the CUDA addon registers every op of the CPU addon under the same name', (t) => {
  // Ops are registered once, in native/ops/*.cc and native/common/*.cc (compiled into both addons);
  // native/ops/*.cu holds the CUDA-only ones. None is registered in a backend folder.
  const native = (d: string): string => path.join(ROOT, 'native', d);
  const shared = [...inDir(native('common'), '.cc'), ...inDir(native('ops'), '.cc')];
  const cpuOps = registeredOps([...shared, ...inDir(native('cpu'), '.cc')]);
  const cudaOps = registeredOps([...shared, ...inDir(native('ops'), '.cu'), ...inDir(CUDA_DIR, '.cu')]);
  t.true(cpuOps.size > 10, 'found the CPU ops');
  const missing = [...cpuOps].filter((n) => !CPU_ONLY_OPS.has(n) && !cudaOps.has(n)).sort();
  t.deepEqual(missing, [], `ops with no CUDA version: ${missing.join(', ')}`);
});

/** The names of an X-macro list `#define NAME(X) X(a, ...) X(b, ...)` in a file, in order. */
function xList(file: string, macro: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const start = text.indexOf(`#define ${macro}(X)`);
  if (start < 0) return [];
  let end = start;
  while (true) {
    const nl = text.indexOf('\n', end);
    if (nl < 0 || text[nl - 1] !== '\\') {
      end = nl < 0 ? text.length : nl;
      break;
    }
    end = nl + 1;
  }
  return [...text.slice(start, end).matchAll(/\bX\((\w+),/g)].map((m) => m[1]);
}

test('the unary kinds are the same list, in the same order, in TypeScript, native/cpu and native/cuda', (t) => {
  const ts = fs.readFileSync(path.join(ROOT, 'lib', 'ops', 'elementwise.ts'), 'utf8');
  const m = /const UNARY = \{([^}]*)\}/.exec(ts);
  t.truthy(m, 'lib/ops/elementwise.ts has UNARY');
  const tsList = [...m![1].matchAll(/(\w+): (\d+)/g)].sort((a, b) => Number(a[2]) - Number(b[2])).map((x) => x[1]);
  t.deepEqual(tsList.map((_, i) => i), [...m![1].matchAll(/: (\d+)/g)].map((x) => Number(x[1])).sort((a, b) => a - b), 'kinds 0..n-1');
  const cpuList = xList(path.join(ROOT, 'native', 'cpu', 'elementwise.cc'), 'PSTAL_UNARY_CPU');
  const cudaList = xList(path.join(CUDA_DIR, 'elementwise.cu'), 'PSTAL_UNARY_CUDA');
  t.true(cpuList.length > 5, cpuList.join(', '));
  t.deepEqual(cpuList, tsList, 'native/cpu/elementwise.cc PSTAL_UNARY_CPU against lib/ops/elementwise.ts UNARY');
  t.deepEqual(cudaList, tsList, 'native/cuda/elementwise.cu PSTAL_UNARY_CUDA against lib/ops/elementwise.ts UNARY');
});

let outDir: string | undefined;
test.after.always(() => {
  if (outDir) fs.rmSync(outDir, { recursive: true, force: true });
});

if (!nvcc) {
  test.skip('CUDA sources compile with nvcc (skipped: nvcc was not found; set CUDA_HOME or put nvcc on PATH)', () => {});
} else if (!nodeHeaders || !addonApi) {
  test.skip(`CUDA sources compile with nvcc (skipped: ${!nodeHeaders ? 'the Node headers (node_api.h) were not found' : 'node-addon-api is not installed'})`, () => {});
} else if (sources.length === 0) {
  test.skip('CUDA sources compile with nvcc (skipped: native/cuda has no .cu files)', () => {});
} else {
  const cublas = cublasInclude();
  const nice = fs.existsSync('/usr/bin/nice') ? ['/usr/bin/nice', '-n', '19'] : [];
  for (const file of sources) {
    const text = fs.readFileSync(path.join(ROOT, 'native', file), 'utf8');
    const needsCublas = /^\s*#\s*include\s*[<"]cublas/m.test(text);
    if (needsCublas && !cublas) {
      test.skip(`nvcc compiles native/${file} (skipped: it includes cuBLAS, whose header was found neither in the toolkit, CUBLAS_ROOT nor a pip wheel)`, () => {});
      continue;
    }
    test(`nvcc compiles native/${file}`, async (t) => {
      outDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-nvcc-'));
      const args = [
        '-std=c++20', '-c', '-arch=sm_90', '-o', path.join(outDir, `${file.replace(/\//g, '_')}.o`),
        '-I', path.join(ROOT, 'native'), '-I', addonApi, '-I', nodeHeaders,
        '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DPSTAL_CUDA=1',
        ...(needsCublas && cublas ? ['-I', cublas] : []),
        path.join(ROOT, 'native', file),
      ];
      const cmd = [...nice, nvcc, ...args];
      const result = await withSlot(
        () =>
          new Promise<{ code: number; output: string }>((resolve) => {
            t.timeout(600_000); // from when this file's compile starts (niced: it yields to the other test files)
            execFile(cmd[0], cmd.slice(1), { cwd: ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
              resolve({ code: !err ? 0 : typeof err.code === 'number' ? err.code : 1, output: `${err && !stderr ? err.message : ''}${stdout}${stderr}` }),
            );
          }),
      );
      t.is(result.code, 0, `nvcc failed on native/${file}:\n${result.output.slice(-6000)}`);
    });
  }
}
