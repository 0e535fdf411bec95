/**
 * half.ts: IEEE 754 binary16 (float16) values, as the .npy, safetensors and torch readers meet them.
 */

/**
 * The float16 with bit pattern h (0 .. 0xffff) as a number: exact (every float16 is a float32),
 * signed zeros, subnormals, infinities and NaN included.
 */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
