/**
 * backend.ts: devices. Every tensor names its device; ops call the same-named native functions on
 * that device's addon (`backend(t.device).matmul_forward(...)`), so the CPU and CUDA backends
 * implement one interface: NativeBuffer plus the ops registered in native/<backend>/.
 */
import * as fs from 'fs';
import * as path from 'path';
import { cpu, cpuAddonFile, CudaAddon, CudaDeviceInfo, NativeAddon, PACKAGE_ROOT } from './native';
import { cublasMajorOf, cublasNotFound, CublasFound, findCublas } from './cublas';

export type Device = 'cpu' | 'cuda';

let cudaAddon: CudaAddon | undefined;
let cudaLoaded: CudaAddonSource | undefined;
let cudaError: string | undefined;

/** Where `npm run build:cuda` puts the CUDA addon. */
export const CUDA_ADDON_FILE = path.join(PACKAGE_ROOT, 'build-cuda', 'Release', 'pstal_cuda.node');

/**
 * The optional platform package that carries the prebuilt CUDA addon (npm/linux-x64-cuda in a
 * checkout; an optional dependency of pstal, installed with it on Linux x64 with glibc).
 */
export const CUDA_PACKAGE = `@pstal/${process.platform}-${process.arch}-cuda`;

/** A CUDA addon to try: the file, and what it is in words. */
export interface CudaAddonSource {
  file: string;
  /** 'PSTAL_CUDA_ADDON', 'the local build', '@pstal/linux-x64-cuda 0.1.0' */
  kind: string;
  /** the cuBLAS loaded for it (undefined: none needed, or the addon was loaded before this was known) */
  cublas?: CublasFound;
}

/** The package's own version (package.json beside lib/ or dist/). */
function ownVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The CUDA addons there are, in the order they are tried: PSTAL_CUDA_ADDON (a file), else the
 * local build (build-cuda/, `npm run build:cuda`), then the platform package's prebuilt addon.
 * A platform package of another version than pstal's is listed with a `mismatch`.
 */
export function cudaAddonSources(): (CudaAddonSource & { mismatch?: string })[] {
  const override = process.env.PSTAL_CUDA_ADDON;
  if (override) return [{ file: path.resolve(override), kind: 'PSTAL_CUDA_ADDON' }];
  const out: (CudaAddonSource & { mismatch?: string })[] = [];
  if (fs.existsSync(CUDA_ADDON_FILE)) out.push({ file: CUDA_ADDON_FILE, kind: 'the local build' });
  let pkgJson: string | undefined;
  try {
    pkgJson = require.resolve(`${CUDA_PACKAGE}/package.json`, { paths: [PACKAGE_ROOT] });
  } catch {
    pkgJson = undefined;
  }
  if (pkgJson) {
    const version = (JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { version: string }).version;
    const own = ownVersion();
    out.push({
      file: path.join(path.dirname(pkgJson), 'pstal_cuda.node'),
      kind: `${CUDA_PACKAGE} ${version}`,
      mismatch: version === own ? undefined : `${CUDA_PACKAGE} is ${version} but pstal is ${own}: \`npm install ${CUDA_PACKAGE}@${own}\``,
    });
  }
  return out;
}

const cublasLoaded = new Map<number, CublasFound>();

/**
 * Finds cuBLAS libcublas.so.<major> (lib/runtime/cublas.ts) and loads it into the process, so
 * that a CUDA addon needing it loads without an rpath or LD_LIBRARY_PATH. Throws the search's
 * message (where it looked, what to install) when there is none.
 */
export function loadCublas(major: number): CublasFound {
  const done = cublasLoaded.get(major);
  if (done) return done;
  const dlopen = cpu().dlopen_global as ((file: string) => string) | undefined;
  if (typeof dlopen !== 'function')
    throw new Error('the CPU addon has no dlopen_global (built before it was added): rebuild it with `npm run build:native`');
  const search = findCublas({ major, packageRoot: PACKAGE_ROOT });
  if (search.error) throw new Error(search.error);
  let found = search.found;
  if (!found) {
    // 4. the library path: the dynamic linker's own search
    try {
      try {
        dlopen(`libcublasLt.so.${major}`);
      } catch {
        // libcublas finds it itself if it can
      }
      found = { library: dlopen(`libcublas.so.${major}`), from: 'the library path' };
    } catch (e) {
      throw new Error(cublasNotFound(major, search, (e as Error).message.replace(/^dlopen_global: /, '')));
    }
  } else {
    try {
      // Lt first: libcublas needs it, and finds it beside itself only through its own RUNPATH
      if (found.lt) dlopen(found.lt);
      dlopen(found.library);
    } catch (e) {
      throw new Error(`cuBLAS from ${found.from} (${found.library}) could not be loaded: ${(e as Error).message.replace(/^dlopen_global: /, '')}`);
    }
  }
  cublasLoaded.set(major, found);
  return found;
}

/**
 * Loads a CUDA addon from `file`, or throws the user-facing error (what is missing and how to fix
 * it). cuBLAS is found and loaded first when the addon needs it. Exported for tests; use `cuda()`,
 * which tries the sources of cudaAddonSources() in order, once.
 */
export function loadCudaAddon(file: string, kind = 'a CUDA addon'): CudaAddon {
  if (!fs.existsSync(file)) throw new Error(noCudaAddon(file));
  let cublas: CublasFound | undefined;
  const major = cublasMajorOf(file);
  if (major !== undefined) {
    try {
      cublas = loadCublas(major);
    } catch (e) {
      throw new Error(`pstal: device 'cuda' could not be loaded from ${file}: ${(e as Error).message} (addon: ${kind})`);
    }
  }
  try {
    const m = { exports: {} as CudaAddon };
    process.dlopen(m, file);
    lastLoad = { file, kind, cublas };
    return m.exports;
  } catch (e) {
    const msg = (e as Error).message;
    // The addon refuses to initialise where no GPU or driver can be used (mem::init in native/cuda/memory.cu).
    const why = /no usable CUDA device/.test(msg) ? `no CUDA device on this machine: ${msg}` : msg;
    const cublasWords = cublas ? `; cuBLAS: ${cublas.library}, from ${cublas.from}` : '';
    throw new Error(`pstal: device 'cuda' could not be loaded from ${file}: ${why} (addon: ${kind}${cublasWords})`);
  }
}
let lastLoad: CudaAddonSource | undefined;

function noCudaAddon(file: string): string {
  return (
    "pstal: device 'cuda' is not available: there is no CUDA addon " +
    `(expected ${file}, or the ${CUDA_PACKAGE} package). Install ${CUDA_PACKAGE} (an optional dependency of pstal, ` +
    'prebuilt for Linux x64 with glibc), or build the addon with `npm run build:cuda` on a machine with the CUDA toolkit; ' +
    "or use device 'cpu'."
  );
}

/** The CUDA addon, loaded on first use (local build, else the platform package); a clear error where there is none. */
export function cuda(): CudaAddon {
  if (cudaAddon) return cudaAddon;
  if (cudaError) throw new Error(cudaError);
  const sources = cudaAddonSources();
  if (sources.length === 0) {
    cudaError = noCudaAddon(CUDA_ADDON_FILE);
    throw new Error(cudaError);
  }
  // A build that is there but fails to load is the error to report, not the absence of the other.
  const causes: string[] = [];
  for (const s of sources) {
    if (s.mismatch) {
      causes.push(`pstal: device 'cuda': ${s.mismatch}`);
      continue;
    }
    try {
      cudaAddon = loadCudaAddon(s.file, s.kind);
      cudaLoaded = lastLoad;
      return cudaAddon;
    } catch (e) {
      causes.push((e as Error).message);
      // no GPU is no GPU whichever addon: the next one would say the same
      if (/no CUDA device on this machine/.test((e as Error).message)) break;
    }
  }
  cudaError = causes.join('\n');
  throw new Error(cudaError);
}

/** Which CUDA addon was loaded, and its cuBLAS (undefined until device 'cuda' has been used). */
export function cudaAddonLoaded(): CudaAddonSource | undefined {
  return cudaLoaded;
}

export function checkDevice(device: unknown): Device {
  if (device !== 'cpu' && device !== 'cuda')
    throw new Error(`Expected 'cpu' or 'cuda' for device but received ${JSON.stringify(device)}`);
  return device;
}

export function backend(device: Device): NativeAddon {
  return device === 'cpu' ? cpu() : cuda();
}

/** Whether device 'cuda' can be used here (without throwing). */
export function cudaAvailable(): boolean {
  try {
    cuda();
    return true;
  } catch {
    return false;
  }
}

/** The CUDA device in use (throws where device 'cuda' is unavailable). */
export type { CudaDeviceInfo } from './native';

export function cudaDeviceInfo(): CudaDeviceInfo {
  return cuda().device_info();
}

/**
 * TF32 tensor cores for CUDA GEMMs: several times the float32 rate, at ~1e-3 relative error.
 * Off by default (results then match the CPU backend to float32 rounding); PSTAL_TF32=1 turns it on.
 * Per thread: it sets the calling thread's GEMMs only (a worker thread, e.g. createDetector's,
 * starts from PSTAL_TF32 whatever the main thread set).
 */
export function setTf32(on: boolean): void {
  if (typeof on !== 'boolean') throw new Error(`Expected a boolean for on but received ${JSON.stringify(on)}`);
  cuda().set_tf32(on);
}

/**
 * The launch counter of one backend since its last reset: native calls per op (`calls`), and on
 * CUDA the device work each op queued (`launches`: kernel launches and cuBLAS calls; work queued
 * outside any op, e.g. a buffer's fill, under '(outside ops)'). For profiles (scripts/profile-stage1.ts):
 * how many native calls a training step takes.
 */
import type { CallCounts } from './native';
export type { CallCounts };

export function callCounts(device: Device = 'cpu'): CallCounts {
  return backend(checkDevice(device)).call_counts();
}

/** Clears the backend's launch counter. */
export function resetCallCounts(device: Device = 'cpu'): void {
  backend(checkDevice(device)).reset_call_counts();
}

/** Waits for every CUDA op this thread queued (a no-op where the CUDA addon is not loaded): for timing. */
export function cudaSynchronize(): void {
  if (cudaAddon) cudaAddon.synchronize();
}

/**
 * The backends found, in words, one a line (`pstal --version`): the CPU addon's file and GEMM
 * kernel; the CUDA addon with its cuBLAS and GPU, or why device 'cuda' is not available.
 */
export function backendsReport(): string[] {
  const rel = (f: string): string => (path.relative(PACKAGE_ROOT, f).startsWith('..') ? f : path.relative(PACKAGE_ROOT, f));
  const lines: string[] = [];
  try {
    const file = cpuAddonFile();
    const what = /[\\/]prebuilds[\\/]/.test(file) ? 'prebuilt' : /[\\/]build[\\/]/.test(file) ? 'local build' : 'PSTAL_ADDON';
    const g = cpu().gemm_info();
    lines.push(`cpu: ${rel(file)} (${what}), GEMM kernel ${g.kernel}, SIMD ${g.simd}, ${g.threads} threads`);
  } catch (e) {
    lines.push(`cpu: not available: ${(e as Error).message.split('\n').slice(0, 2).join(' ')}`);
  }
  try {
    cuda();
    const l = cudaLoaded!;
    const d = cudaDeviceInfo();
    const cublas = l.cublas ? `, cuBLAS ${l.cublas.library} (${l.cublas.from})` : '';
    lines.push(`cuda: ${rel(l.file)} (${l.kind})${cublas}`);
    lines.push(`gpu: ${d.name}, compute ${d.computeCapability}, ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB, driver ${d.driverVersion}, runtime ${d.runtimeVersion}`);
  } catch (e) {
    const msg = (e as Error).message.replace(/^pstal: /, '');
    lines.push(`cuda: not available: ${msg.split('\n').join('\n  ')}`);
  }
  return lines;
}
