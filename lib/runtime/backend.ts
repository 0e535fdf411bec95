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

/** The CUDA addon, loaded on first use; a clear error where there is none. */
export function cuda(): NativeAddon {
  if (cudaAddon) return cudaAddon;
  if (cudaError) throw new Error(cudaError);
  const file = path.join(PACKAGE_ROOT, 'build-cuda', 'Release', 'pstal_cuda.node');
  if (!fs.existsSync(file)) {
    cudaError =
      "pstal: device 'cuda' is not available: the CUDA backend was not built (no CUDA toolkit with cuBLAS " +
      `was found at install time; expected ${file}). Build it with \`npm run build:cuda\` on a machine with ` +
      "the CUDA toolkit, or use device 'cpu'.";
    throw new Error(cudaError);
  }
  try {
    cudaAddon = require(file) as NativeAddon;
    return cudaAddon;
  } catch (e) {
    cudaError = `pstal: device 'cuda' could not be loaded from ${file}: ${(e as Error).message}`;
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
