/**
 * cublas.ts: where cuBLAS is, found at run time for the CUDA addon.
 *
 * The CUDA addon (a local build or the @pstal/linux-x64-cuda package) needs libcublas.so.N but
 * carries no rpath: the same binary must work wherever cuBLAS is installed. Before the addon is
 * loaded, findCublas() looks for the library, in order:
 *
 *   1. PSTAL_CUBLAS: the library itself or its folder (an error if it holds none);
 *   2. the CUDA toolkit: CUDA_HOME, CUDA_PATH, CUBLAS_ROOT, /usr/local/cuda, /usr/local/cuda-*,
 *      /opt/cuda (lib64/, lib/, targets/<arch>-linux/lib/);
 *   3. an NVIDIA pip wheel (`pip install nvidia-cublas`: nvidia/cu13/lib/; the older
 *      nvidia-cublas-cu12: nvidia/cublas/lib/) in the site-packages of python3 (asked only where it
 *      is on PATH), of the active virtualenv or conda environment, of the usual system and user
 *      folders, and of this package's own build-cublas/venv (where `npm install` put one);
 *   4. the library path (LD_LIBRARY_PATH, ldconfig's cache): tried by name when the others found
 *      nothing.
 *
 * backend.ts then loads libcublasLt and libcublas into the process (the CPU addon's dlopen_global),
 * and the addon's DT_NEEDED libcublas.so.N resolves to that copy. neededLibraries() and runpaths()
 * read an ELF file's dynamic section (which major of cuBLAS an addon needs; tests check that no
 * rpath is left).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** A cuBLAS found on disk: libcublas.so.N, and libcublasLt.so.N beside it when it is there. */
export interface CublasFound {
  library: string;
  lt?: string;
  /** where it was found, in words: 'PSTAL_CUBLAS', 'the CUDA toolkit at /usr/local/cuda', ... */
  from: string;
}

export interface CublasSearch {
  found?: CublasFound;
  /** each place looked at, in words, for the error message */
  looked: string[];
  /** set when PSTAL_CUBLAS names no cuBLAS: the search stops there */
  error?: string;
}

export interface CublasSearchOptions {
  /** the major version: libcublas.so.<major> */
  major: number;
  env?: NodeJS.ProcessEnv;
  /** toolkit folders instead of the environment's and the usual ones (tests) */
  toolkits?: string[];
  /** site-packages folders instead of those found (tests) */
  sites?: string[];
  /** the package's root, for build-cublas/venv */
  packageRoot?: string;
}

const TARGET_LIB = process.arch === 'arm64' ? 'targets/sbsa-linux/lib' : 'targets/x86_64-linux/lib';

/** libcublas.so.<major> (and libcublasLt beside it) in `dir`, if there. */
function inFolder(dir: string, major: number, from: string): CublasFound | undefined {
  const library = path.join(dir, `libcublas.so.${major}`);
  if (!isFile(library)) return undefined;
  const lt = path.join(dir, `libcublasLt.so.${major}`);
  return { library, lt: isFile(lt) ? lt : undefined, from };
}

function isFile(f: string): boolean {
  try {
    return fs.statSync(f).isFile();
  } catch {
    return false;
  }
}

function isDir(d: string): boolean {
  try {
    return fs.statSync(d).isDirectory();
  } catch {
    return false;
  }
}

function globDirs(parent: string, re: RegExp): string[] {
  try {
    return fs
      .readdirSync(parent)
      .filter((n) => re.test(n))
      .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))
      .map((n) => path.join(parent, n));
  } catch {
    return [];
  }
}

/** The toolkit roots to look in: the environment's, then the usual folders (newest version first). */
export function toolkitRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const roots = [env.CUDA_HOME, env.CUDA_PATH, env.CUBLAS_ROOT, '/usr/local/cuda', ...globDirs('/usr/local', /^cuda-\d+(\.\d+)*$/), '/opt/cuda'];
  return [...new Set(roots.filter((r): r is string => Boolean(r)))];
}

/** python3's site-packages (sys.path and the user site), where python3 is on PATH. */
function pythonSites(env: NodeJS.ProcessEnv): string[] {
  const python = env.PYTHON || 'python3';
  const r = spawnSync(python, ['-c', 'import sys, site, json; print(json.dumps(sys.path + [site.getusersitepackages()]))'], {
    env,
    encoding: 'utf8',
    timeout: 10000,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  if (r.status !== 0 || !r.stdout) return [];
  try {
    return (JSON.parse(r.stdout) as string[]).filter((d) => /[\\/](site|dist)-packages$/.test(d) && isDir(d));
  } catch {
    return [];
  }
}

/** Site-packages folders under a Python prefix (a virtualenv, conda, /usr/local, ~/.local). */
function prefixSites(prefix: string): string[] {
  return [
    ...globDirs(path.join(prefix, 'lib'), /^python3(\.\d+)?$/).flatMap((d) => [path.join(d, 'site-packages'), path.join(d, 'dist-packages')]),
    path.join(prefix, 'lib', 'python3', 'dist-packages'),
  ].filter(isDir);
}

/** Every site-packages folder to look in for the NVIDIA wheels. */
export function sitePackages(env: NodeJS.ProcessEnv = process.env, packageRoot?: string): string[] {
  const home = env.HOME || os.homedir();
  const prefixes = [env.VIRTUAL_ENV, env.CONDA_PREFIX, home && path.join(home, '.local'), '/usr/local', '/usr', packageRoot && path.join(packageRoot, 'build-cublas', 'venv')];
  const sites = [...pythonSites(env), ...prefixes.filter((p): p is string => Boolean(p)).flatMap(prefixSites)];
  return [...new Set(sites.map((s) => path.resolve(s)))];
}

/** Where cuBLAS libcublas.so.<major> is, searched in the order above (no loading). */
export function findCublas(o: CublasSearchOptions): CublasSearch {
  const env = o.env ?? process.env;
  const name = `libcublas.so.${o.major}`;
  const looked: string[] = [];

  // 1. PSTAL_CUBLAS: the library or its folder
  const explicit = env.PSTAL_CUBLAS;
  if (explicit) {
    const found = isFile(explicit)
      ? { library: path.resolve(explicit), lt: ((lt) => (isFile(lt) ? lt : undefined))(path.join(path.dirname(path.resolve(explicit)), `libcublasLt.so.${o.major}`)), from: 'PSTAL_CUBLAS' }
      : [explicit, path.join(explicit, 'lib64'), path.join(explicit, 'lib')].map((d) => inFolder(d, o.major, 'PSTAL_CUBLAS')).find(Boolean);
    if (found) return { found, looked: [`PSTAL_CUBLAS=${explicit}`] };
    return { looked: [`PSTAL_CUBLAS=${explicit}`], error: `PSTAL_CUBLAS=${explicit} is neither ${name} nor a folder holding it` };
  }
  looked.push('PSTAL_CUBLAS (not set)');

  // 2. the CUDA toolkit
  const roots = o.toolkits ?? toolkitRoots(env);
  const present = roots.filter(isDir);
  for (const root of present)
    for (const sub of ['lib64', 'lib', TARGET_LIB]) {
      const found = inFolder(path.join(root, sub), o.major, `the CUDA toolkit at ${root}`);
      if (found) return { found, looked };
    }
  looked.push(`the CUDA toolkit's lib64/, lib/ and ${TARGET_LIB}/ under ${present.length ? present.join(', ') : `none of ${roots.join(', ')} (not there)`}`);

  // 3. NVIDIA pip wheels
  const sites = o.sites ?? sitePackages(env, o.packageRoot);
  const layouts = [`nvidia/cu${o.major}/lib`, 'nvidia/cublas/lib'];
  for (const site of sites)
    for (const l of layouts) {
      const found = inFolder(path.join(site, l), o.major, `the pip wheel in ${site}`);
      if (found) return { found, looked };
    }
  looked.push(`pip wheels (${layouts.join(', ')}) in ${sites.length ? sites.join(', ') : 'no site-packages folder (no python3 on PATH, no virtualenv)'}`);
  return { looked };
}

/** The message of a search that found nothing (or the library path's refusal, `byName`). */
export function cublasNotFound(major: number, search: CublasSearch, byName?: string): string {
  const name = `libcublas.so.${major}`;
  const lines = [...search.looked];
  if (byName !== undefined) lines.push(`the library path (LD_LIBRARY_PATH=${process.env.LD_LIBRARY_PATH || ''}, ldconfig): ${byName}`);
  const wheel = major >= 13 ? `nvidia-cublas==${major}.*` : `nvidia-cublas-cu${major}`;
  return (
    `cuBLAS (${name}) was not found; looked in:\n` +
    lines.map((l) => `    - ${l}`).join('\n') +
    `\n  Install it with \`pip install ${wheel}\` (into python3's site-packages or an active virtualenv) or the CUDA ${major} toolkit, ` +
    `or set PSTAL_CUBLAS to ${name} or its folder. Device 'cpu' works without it.`
  );
}

// ---- ELF dynamic section ------------------------------------------------------------------------

interface ElfDynamic {
  needed: string[];
  rpath: string[];
  runpath: string[];
}

/** The DT_NEEDED, DT_RPATH and DT_RUNPATH entries of a 64-bit little-endian ELF file; undefined if it is not one. */
export function elfDynamic(file: string): ElfDynamic | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const read = (pos: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      fs.readSync(fd, b, 0, len, pos);
      return b;
    };
    const h = read(0, 64);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return undefined; // ELF, 64-bit, little-endian
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    const ph = read(phoff, phentsize * phnum);
    const loads: { vaddr: number; offset: number; filesz: number }[] = [];
    let dyn: { offset: number; size: number } | undefined;
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      const type = ph.readUInt32LE(o);
      const offset = Number(ph.readBigUInt64LE(o + 8));
      const vaddr = Number(ph.readBigUInt64LE(o + 16));
      const filesz = Number(ph.readBigUInt64LE(o + 32));
      if (type === 1) loads.push({ vaddr, offset, filesz });
      if (type === 2) dyn = { offset, size: filesz };
    }
    const out: ElfDynamic = { needed: [], rpath: [], runpath: [] };
    if (!dyn) return out;
    const d = read(dyn.offset, dyn.size);
    const entries: [number, number][] = [];
    let strtab = -1;
    for (let o = 0; o + 16 <= d.length; o += 16) {
      const tag = Number(d.readBigInt64LE(o));
      const val = Number(d.readBigUInt64LE(o + 8));
      if (tag === 0) break;
      if (tag === 5) strtab = val;
      entries.push([tag, val]);
    }
    const seg = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.filesz);
    if (!seg) return out;
    const strOffset = seg.offset + (strtab - seg.vaddr);
    const str = (at: number): string => {
      const b = read(strOffset + at, 4096);
      const end = b.indexOf(0);
      return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
    };
    for (const [tag, val] of entries) {
      if (tag === 1) out.needed.push(str(val));
      else if (tag === 15) out.rpath.push(...str(val).split(':'));
      else if (tag === 29) out.runpath.push(...str(val).split(':'));
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** The cuBLAS major an addon needs (its DT_NEEDED libcublas.so.N), or undefined. */
export function cublasMajorOf(file: string): number | undefined {
  const dyn = elfDynamic(file);
  const m = dyn?.needed.map((n) => /^libcublas\.so\.(\d+)$/.exec(n)).find(Boolean);
  return m ? Number(m[1]) : undefined;
}
