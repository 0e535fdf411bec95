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
 * Loads a CUDA addon from `file`, or throws the user-facing error (what is missing and how to fix
 * it). Exported for tests; use `cuda()`, which loads the default file once and caches the outcome.
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
    return require(file) as NativeAddon;
  } catch (e) {
    throw new Error(`pstal: device 'cuda' could not be loaded from ${file}: ${(e as Error).message}`);
  }
}

/** The CUDA addon, loaded on first use; a clear error where there is none. */
export function cuda(): NativeAddon {
  if (cudaAddon) return cudaAddon;
  if (cudaError) throw new Error(cudaError);
  try {
    cudaAddon = loadCudaAddon(CUDA_ADDON_FILE);
    return cudaAddon;
  } catch (e) {
    cudaError = (e as Error).message;
    throw e;
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
