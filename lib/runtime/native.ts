/**
 * native.ts: the one loader of the native addons.
 *
 * The CPU addon is loaded with node-gyp-build, which prefers a local build (build/Release) and
 * falls back to a prebuilt binary under prebuilds/<platform>-<arch>/ (the tarball `npm pack` makes
 * carries one: test/e2e/package.test.ts installs it without a compiler and with --ignore-scripts);
 * node-gyp-build itself honours PREBUILDS_ONLY=1 (only the prebuild is accepted). cpuAddonFile()
 * says which file was loaded. The CUDA addon (lib/runtime/backend.ts) is loaded only when a tensor
 * or model asks for device 'cuda'.
 */
import * as path from 'path';
import * as fs from 'fs';

/** A float32 buffer in native memory, released by dispose(). */
export interface NativeBuffer {
  readonly size: number;
  readonly disposed: boolean;
  dispose(): void;
  read(offset?: number, count?: number): Float32Array;
  write(values: Float32Array, offset?: number): void;
  fill(value: number): void;
  /** New storage for a disposed buffer (a size: zero-filled; a Float32Array: copied); throws on a live one. */
  reset(sizeOrData: number | Float32Array, zero?: boolean): void;
}

/** The addon's exports: NativeBuffer plus every op registered with PSTAL_OP. */
export interface NativeAddon {
  /** new NativeBuffer(size) is zero-filled, new NativeBuffer(size, false) uninitialised. */
  NativeBuffer: new (sizeOrData: number | Float32Array, zero?: boolean) => NativeBuffer;
  backend: string;
  [op: string]: any;
}

/** The package's root folder, from lib/runtime (ts-node) or dist/lib/runtime (compiled). */
export const PACKAGE_ROOT = ((): string => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

let cpuAddon: NativeAddon | undefined;
let cpuFile: string | undefined;

/** The file the CPU addon was loaded from (it is loaded if it was not). */
export function cpuAddonFile(): string {
  cpu();
  return cpuFile!;
}

/** The CPU addon; throws one message listing each cause and its fix if it cannot be loaded. */
export function cpu(): NativeAddon {
  if (cpuAddon) return cpuAddon;
  const causes: string[] = [];
  // PSTAL_ADDON=/path/pstal.node: this build of the addon instead (scripts/asan.sh: the sanitizer build)
  const override = process.env.PSTAL_ADDON;
  if (override) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      cpuAddon = require(path.resolve(override)) as NativeAddon;
      cpuFile = path.resolve(override);
      return cpuAddon;
    } catch (e) {
      throw new Error(`pstal: PSTAL_ADDON=${override}: the addon could not be loaded: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  try {
    // node-gyp-build(dir) is require(node-gyp-build.path(dir)): the path is kept for cpuAddonFile()
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const file = require('node-gyp-build').path(PACKAGE_ROOT) as string;
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cpuAddon = require(file) as NativeAddon;
    cpuFile = file;
    return cpuAddon;
  } catch (e) {
    causes.push(`node-gyp-build(${PACKAGE_ROOT}): ${(e as Error).message.split('\n')[0]}`);
  }
  throw new Error(
    'pstal: the native CPU addon could not be loaded.\n' +
      causes.map((c) => `  - ${c}`).join('\n') +
      '\n  Fix: run `npm rebuild pstal` (needs g++, make, python3) or install a package with prebuilds.',
  );
}

/** Worker threads of the CPU kernels (default: all cores, or PSTAL_NUM_THREADS). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads: expected a positive integer, received ${n}`);
  cpu().set_num_threads(n);
}

export function getNumThreads(): number {
  return cpu().get_num_threads() as number;
}

/** GEMM operand precision of the CPU kernels: 'fp32' (the default) or 'bf16'. */
export type GemmPrecision = 'fp32' | 'bf16';

/**
 * The precision of every CPU matrix product that follows (linear, convolution, attention, matmul), for
 * training and inference alike: 'fp32' (the default; results bit-identical to before this option) or
 * 'bf16' (each GEMM rounds its operands to bfloat16 and accumulates in float32 with AVX512-BF16;
 * weights, gradients, Adam state and everything outside the GEMM stay float32). Throws on a CPU
 * without AVX512-BF16, naming what it needs. Process-wide, like setNumThreads.
 */
export function setGemmPrecision(precision: GemmPrecision): void {
  if (precision !== 'fp32' && precision !== 'bf16')
    throw new Error(`setGemmPrecision: expected 'fp32' or 'bf16' for precision but received ${JSON.stringify(precision)}`);
  try {
    cpu().set_gemm_precision(precision);
  } catch (e) {
    throw new Error(`setGemmPrecision: ${(e as Error).message.replace(/^set_gemm_precision: /, '')}`);
  }
}

export function getGemmPrecision(): GemmPrecision {
  return cpu().gemm_info().precision as GemmPrecision;
}

/** Whether setGemmPrecision('bf16') can work here (AVX512-BF16, or PSTAL_GEMM_BF16=emulate). */
export function bf16Supported(): boolean {
  return Boolean(cpu().gemm_info().bf16Supported);
}
