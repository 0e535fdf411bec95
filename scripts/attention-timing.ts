/**
 * attention-timing.ts: the CPU attention kernels alone, in ns per attention weight (H x L x L), and
 * a hash of every output and gradient, for A/B runs of two builds (PSTAL_ADDON=path picks the addon;
 * equal hashes = the same bits). Training: attention_forward with saved probabilities and dropout
 * 0.1, then attention_backward; inference: attention_forward without them, no dropout. Best of 5
 * (training) or 3 (inference) calls, one thread unless --threads; D = 256, 8 heads, as HR-Pro at D = 256.
 *
 *   node -r ts-node/register/transpile-only scripts/attention-timing.ts [--lengths 200,300,364,715,920] [--threads 1]
 */
import { createHash } from 'crypto';
import { backend } from '../lib/runtime/backend';
import { setNumThreads } from '../lib/runtime/native';
import { Tensor } from '../lib/tensor/tensor';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

/** Deterministic values in [-0.5, 0.5) (an LCG: the same inputs for every build). */
function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    a[i] = x / 2147483648 - 0.5;
  }
  return a;
}

function best(reps: number, f: () => void): number {
  let b = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    f();
    b = Math.min(b, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return b;
}

setNumThreads(Number(arg('threads', '1')));
const B = backend('cpu') as unknown as Record<string, (...a: unknown[]) => void>;
const D = 256, H = 8;
const hash = createHash('sha1');
for (const L of arg('lengths', '200,300,364,715,920').split(',').map(Number)) {
  const [q, k, v, g] = [1, 2, 3, 4].map((s) => Tensor.from(values(L * D, s), [L, D]));
  const [out, dq, dk, dv] = [0, 1, 2, 3].map(() => Tensor.empty([L, D]));
  const probs = Tensor.empty([H, L, L]);
  const fwd = best(5, () => B.attention_forward(out.buffer, probs.buffer, q.buffer, k.buffer, v.buffer, L, L, D, H, 0.1, 7));
  const bwd = best(5, () => B.attention_backward(dq.buffer, dk.buffer, dv.buffer, g.buffer, probs.buffer, q.buffer, k.buffer, v.buffer, L, L, D, H, 0.1, 7));
  for (const t of [out, dq, dk, dv]) hash.update(Buffer.from(t.toArray().buffer));
  const inf = best(3, () => B.attention_forward(out.buffer, null, q.buffer, k.buffer, v.buffer, L, L, D, H, 0, 0));
  hash.update(Buffer.from(out.toArray().buffer));
  const ns = (ms: number): string => ((ms * 1e6) / (H * L * L)).toFixed(2);
  console.log(`L ${L}: training forward ${ns(fwd)}, backward ${ns(bwd)}, inference ${ns(inf)} ns per weight`);
  for (const t of [q, k, v, g, out, dq, dk, dv, probs]) t.dispose();
}
console.log(`hash of outputs and gradients: ${hash.digest('hex').slice(0, 16)}`);
