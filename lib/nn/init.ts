/**
 * init.ts: PyTorch's default initialisers for the layers we use (SPEC §8):
 *   Linear / Conv1d weight: kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in));
 *   their bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in));
 *   MultiheadAttention in_proj_weight: xavier_uniform = U(-sqrt(6 / (fan_in + fan_out)), +);
 *   in_proj_bias, out_proj.bias: 0; LayerNorm: weight 1, bias 0.
 */
import { Rng } from '../util/rng';

export function kaimingUniformDefault(rng: Rng, n: number, fanIn: number): Float32Array {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return rng.uniformArray(n, -bound, bound);
}

export function xavierUniform(rng: Rng, fanOut: number, fanIn: number): Float32Array {
  const bound = Math.sqrt(6 / (fanIn + fanOut));
  return rng.uniformArray(fanOut * fanIn, -bound, bound);
}
