/**
 * backend.ts: devices. Every tensor names its device; ops call the same-named native functions on
 * that device's addon (`backend(t.device).matmul_forward(...)`), so the CPU and CUDA backends
 * implement one interface: NativeBuffer plus the ops registered in native/<backend>/.
 */
import * as fs from 'fs';
import * as path from 'path';
import { cpu, NativeAddon, PACKAGE_ROOT } from './native';

export type Device = 'cpu' | 'cuda';

let cudaAddon: NativeAddon | undefined;
let cudaError: string | undefined;

/** Where `npm run build:cuda` puts the CUDA addon. */
export const CUDA_ADDON_FILE = path.join(PACKAGE_ROOT, 'build-cuda', 'Release', 'pstal_cuda.node');

/**
 * The CUDA prebuild `npm run prebuild` makes (scripts/build-cuda.js --prebuild). Its extension is not
 * `.node`, so node-gyp-build, which takes any `*.node` in prebuilds/<platform>-<arch>/, never mistakes
 * it for the CPU addon; it is loaded here only, with process.dlopen.
 */
export const CUDA_PREBUILD_FILE = path.join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'pstal_cuda.napi.cuda');

/**
 * Loads a CUDA addon from `file`, or throws the user-facing error (what is missing and how to fix
 * it). Exported for tests; use `cuda()`, which tries the local build, then the prebuild, once.
 */
export function loadCudaAddon(file: string): NativeAddon {
  if (!fs.existsSync(file)) {
    throw new Error(
      "pstal: device 'cuda' is not available: the CUDA backend was not built (no CUDA toolkit with cuBLAS " +
        `was found at install time; expected ${file}). Build it with \`npm run build:cuda\` on a machine with ` +
        "the CUDA toolkit, or use device 'cpu'.",
    );
  }
  try {
    const m = { exports: {} as NativeAddon };
    process.dlopen(m, file);
    return m.exports;
  } catch (e) {
    const msg = (e as Error).message;
    // The addon refuses to initialise where no GPU or driver can be used (mem::init in native/cuda/memory.cu).
    const why = /no usable CUDA device/.test(msg) ? `no CUDA device on this machine: ${msg}` : msg;
    throw new Error(`pstal: device 'cuda' could not be loaded from ${file}: ${why}`);
  }
}

/** The CUDA addon, loaded on first use (local build, else prebuild); a clear error where there is none. */
export function cuda(): NativeAddon {
  if (cudaAddon) return cudaAddon;
  if (cudaError) throw new Error(cudaError);
  const files = [CUDA_ADDON_FILE, CUDA_PREBUILD_FILE];
  const present = files.filter((f) => fs.existsSync(f));
  try {
    // A build that is there but fails to load is the error to report, not the absence of the other.
    cudaAddon = loadCudaAddon(present[0] ?? files[0]);
    return cudaAddon;
  } catch (e) {
    const causes = [(e as Error).message];
    for (const f of present.slice(1)) {
      try {
        cudaAddon = loadCudaAddon(f);
        return cudaAddon;
      } catch (e2) {
        causes.push((e2 as Error).message);
      }
    }
    cudaError = causes.join('\n');
    throw new Error(cudaError);
  }
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
export interface CudaDeviceInfo {
  name: string;
  /** e.g. '9.0' */
  computeCapability: string;
  major: number;
  minor: number;
  multiprocessors: number;
  totalBytes: number;
  freeBytes: number;
  device: number;
  driverVersion: number;
  runtimeVersion: number;
}

export function cudaDeviceInfo(): CudaDeviceInfo {
  return cuda().device_info() as CudaDeviceInfo;
}

/**
 * TF32 tensor cores for CUDA GEMMs: several times the float32 rate, at ~1e-3 relative error.
 * Off by default (results then match the CPU backend to float32 rounding); PSTAL_TF32=1 turns it on.
 */
export function setTf32(on: boolean): void {
  if (typeof on !== 'boolean') throw new Error(`Expected a boolean for on but received ${JSON.stringify(on)}`);
  cuda().set_tf32(on);
}

/** Waits for every queued CUDA op (a no-op where the CUDA addon is not loaded): for timing. */
export function cudaSynchronize(): void {
  if (cudaAddon) cudaAddon.synchronize();
}
