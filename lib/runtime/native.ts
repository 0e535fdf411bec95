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

/**
 * A kernel op: its arguments (native buffers, shapes, scalars) are read and checked natively
 * (native/ops/<family>.cc), and a bad one throws an error naming the op and the argument. The
 * typed faces of the ops are in lib/ops and lib/postprocess.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KernelOp = (...args: any[]) => any;

/** The buffer statistics both backends keep (native/common/addon.cc). */
export interface MemoryStats {
  liveBytes: number;
  liveBuffers: number;
  createdBuffers: number;
  cachedBytes: number;
  /** this thread's isolate only: the bytes V8 has been told its buffers hold */
  reportedBytes: number;
  /** glibc's heap in use and main arena (-1 where the C library does not say) */
  mallocInUseBytes: number;
  mallocArenaBytes: number;
}

/** The GEMM in use (native/cpu/matmul.cc, native/cuda/matmul.cu gemm_info). */
export interface GemmInfo {
  impl: string;
  kernel: string;
  threads: number;
  openblasAvailable: boolean;
  precision: 'fp32' | 'bf16';
  bf16Supported: boolean;
  /** CPU only: the vector instructions the kernels use ('avx512', 'avx2', 'generic'; PSTAL_SIMD caps it) */
  simd?: string;
  /** CUDA only */
  tf32?: boolean;
  cublasVersion?: number;
}

/** Native calls per op since the last reset, and on CUDA the kernel launches and cuBLAS calls per op. */
export interface CallCounts {
  calls: Record<string, number>;
  launches: Record<string, number>;
  totalCalls: number;
  totalLaunches: number;
}

/**
 * Every export of both addons (pstal.node, pstal_cuda.node): NativeBuffer, the backend's name and
 * every op registered with PSTAL_OP in native/common and native/ops/*.cc. The one declaration of
 * the addon's interface: test/unit/native-types.test.ts checks these names against what the
 * addon registers, both ways.
 */
export interface NativeOps {
  /** new NativeBuffer(size) is zero-filled, new NativeBuffer(size, false) uninitialised. */
  NativeBuffer: new (sizeOrData: number | Float32Array, zero?: boolean) => NativeBuffer;
  /** 'cpu' or 'cuda' */
  backend: string;
  // runtime (native/common/addon.cc, dl.cc, native/ops/matmul.cc)
  memory_stats(): MemoryStats;
  release_cached_buffers(): void;
  get_num_threads(): number;
  set_num_threads(threads: number): void;
  /** dlopen(file, RTLD_GLOBAL); returns the file loaded */
  dlopen_global(file: string): string;
  gemm_info(): GemmInfo;
  set_gemm_impl(impl: string): void;
  set_gemm_precision(precision: string): void;
  /** native calls per op since the last reset (and, on CUDA, kernel launches and cuBLAS calls): lib/runtime/backend.ts callCounts types it */
  call_counts(): CallCounts;
  reset_call_counts(): void;
  // elementwise
  binary_forward: KernelOp;
  sum_to: KernelOp;
  unary_forward: KernelOp;
  unary_backward: KernelOp;
  affine: KernelOp;
  axpy: KernelOp;
  first_nonfinite: KernelOp;
  dropout: KernelOp;
  // reduce
  reduce_forward: KernelOp;
  reduce_backward: KernelOp;
  topk_mean_forward: KernelOp;
  topk_mean_backward: KernelOp;
  // norm
  softmax_forward: KernelOp;
  softmax_backward: KernelOp;
  layernorm_forward: KernelOp;
  layernorm_backward: KernelOp;
  l2norm_forward: KernelOp;
  l2norm_backward: KernelOp;
  // matmul, conv, attention
  matmul_forward: KernelOp;
  conv1d_forward: KernelOp;
  conv1d_backward: KernelOp;
  attention_forward: KernelOp;
  attention_backward: KernelOp;
  // fused chains of the training step (one call each way)
  linear_forward: KernelOp;
  linear_backward: KernelOp;
  dropout_add: KernelOp;
  weighted_sum: KernelOp;
  weighted_sum_backward: KernelOp;
  blend_forward: KernelOp;
  blend_backward: KernelOp;
  focal_bce_forward: KernelOp;
  focal_bce_backward: KernelOp;
  similarity_mean_forward: KernelOp;
  similarity_mean_backward: KernelOp;
  contrastive_terms_forward: KernelOp;
  contrastive_terms_backward: KernelOp;
  // shape and tensor
  copy: KernelOp;
  block_copy: KernelOp;
  transpose2d: KernelOp;
  gather_rows_forward: KernelOp;
  gather_rows_backward: KernelOp;
  upsample_linear: KernelOp;
  // loss, roi_align, optim
  loss_forward: KernelOp;
  loss_backward: KernelOp;
  roi_align_forward: KernelOp;
  roi_align_backward: KernelOp;
  adam_step: KernelOp;
  adam_step_many: KernelOp;
  // postprocess, synth
  oic_proposals: KernelOp;
  soft_nms: KernelOp;
  boundary_adaptation: KernelOp;
  synth_features: KernelOp;
}

/** The CUDA device in use (native/ops/device.cu device_info). */
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

/** What the CUDA addon adds (native/ops/*.cu). */
export interface CudaOps {
  device_info(): CudaDeviceInfo;
  /** the calling thread's GEMMs (each thread has its own flag, starting from PSTAL_TF32) */
  set_tf32(on: boolean): void;
  /** waits for the CUDA work the calling thread queued (its stream) */
  synchronize(): void;
}

/** A loaded addon: the CPU one has NativeOps, the CUDA one NativeOps and CudaOps. */
export type NativeAddon = NativeOps & Partial<CudaOps>;
export type CudaAddon = NativeOps & CudaOps;

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
