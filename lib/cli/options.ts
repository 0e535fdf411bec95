/**
 * options.ts: the options several commands share (run, train, test, detect, report, check, import)
 * and the one place each is checked and applied, so that `--device`, `--threads` or `--precision`
 * mean and check the same everywhere. Each command composes its table from these specs.
 */
import type { OptionSpec, Parsed } from './args';
import { CliError } from './args';
import { cpu, setGemmPrecision, setNumThreads } from '../runtime/native';
import { overLimit } from '../util/limits';
import { checkDevice, Device } from '../runtime/backend';
import { CONFIG_NAMES } from '../data/config';


/** The shared option specs; a command may restate a description (`{ ...SHARED.data, describe }`). */
export const SHARED = {
  data: { type: 'string', describe: 'dataset folder in the standard layout (gt_full.json, split_*.txt, point_labels/, features/)', required: true },
  config: { type: 'string', describe: `dataset config: ${CONFIG_NAMES.join(', ')}, or a YAML file`, default: 'thumos14' },
  dim: { type: 'number', describe: "feature width D (default: the data's, from the first training video's .npy header); a value that disagrees with the data is an error naming the file" },
  device: { type: 'string', describe: "'cpu' or 'cuda'", default: 'cpu' },
  threads: { type: 'number', describe: 'CPU threads (default: all cores, or PSTAL_NUM_THREADS)' },
  precision: {
    type: 'string',
    describe: "CPU matrix products: 'fp32', or 'bf16' (bfloat16 operands, float32 accumulation; needs AVX512-BF16)",
    default: 'fp32',
  },
  json: { type: 'boolean', describe: 'print the mAP table as one JSON object on stdout (for scripts)' },
} satisfies Record<string, OptionSpec>;

/** The compute options of the parsed command line. */
export interface ComputeOptions {
  device: Device;
}

/**
 * Applies --threads, --device and --precision (whichever the command has), each checked with a
 * usage error naming the option.
 */
export function applyComputeOptions(a: Parsed): ComputeOptions {
  if (a.threads !== undefined) {
    const n = a.threads as number;
    if (!(Number.isSafeInteger(n) && n >= 1)) throw new CliError(`--threads must be a positive integer, received ${a.threads}`);
    const over = overLimit('threads', n);
    if (over) throw new CliError(`--threads must be ${over}, received ${a.threads}`);
    setNumThreads(n);
  }
  const device = checkDevice(a.device ?? 'cpu');
  applyPrecision(a.precision, device);
  return { device };
}

/** Sets --precision (a usage error names the option when it is not one of the two, or the CPU cannot). */
export function applyPrecision(value: unknown, device: unknown = 'cpu'): void {
  if (value === undefined || value === 'fp32') return;
  if (value !== 'bf16') throw new CliError(`--precision must be 'fp32' or 'bf16', received '${value}'`);
  if (device !== 'cpu') throw new CliError(`--precision bf16 is for --device cpu (received --device ${device})`);
  try {
    setGemmPrecision('bf16');
  } catch (e) {
    throw new CliError(`--precision bf16: ${(e as Error).message.replace(/^setGemmPrecision: /, '')}`);
  }
}

/**
 * The environment variables the native kernels read (native/common/parallel.cc, native/cpu/matmul.cc,
 * native/cpu/attention.cc) fall back to their defaults on a value they do not understand: here such
 * a value is a usage error naming the variable, before any work. `env` is process.env unless given (tests).
 */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  const posInt = (name: string, limit?: 'threads'): void => {
    const v = env[name];
    if (v === undefined || v === '') return;
    const n = Number(v.trim());
    if (!(/^\s*\d+\s*$/.test(v) && Number.isSafeInteger(n) && n >= 1)) throw new CliError(`${name} must be a positive integer, received '${v}'`);
    const over = limit ? overLimit(limit, n) : null;
    if (over) throw new CliError(`${name} must be ${over}, received '${v}'`);
  };
  const oneOf = (name: string, allowed: string[]): void => {
    const v = env[name];
    if (v === undefined || v === '') return;
    if (!allowed.includes(v)) throw new CliError(`${name} must be ${allowed.map((x) => `'${x}'`).join(' or ')} (or unset), received '${v}'`);
  };
  posInt('PSTAL_NUM_THREADS', 'threads');
  for (const name of ['PSTAL_GEMM_KC', 'PSTAL_GEMM_MC', 'PSTAL_GEMM_KC_BF16', 'PSTAL_ATTENTION_BLOCK']) posInt(name);
  oneOf('PSTAL_GEMM', ['openblas']);
  oneOf('PSTAL_GEMM_BF16', ['emulate']);
  oneOf('PSTAL_GEMM_KERNEL', ['generic', 'avx2']);
  oneOf('PSTAL_SIMD', ['avx512', 'avx2', 'generic']);
  if (env.PSTAL_GEMM === 'openblas' && !cpu().gemm_info().openblasAvailable)
    throw new CliError("PSTAL_GEMM=openblas: this build of the addon has no OpenBLAS (it is for benchmarks: build with PSTAL_BENCH_OPENBLAS=1), so the setting would be ignored; unset it");
}
