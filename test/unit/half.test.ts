/**
 * lib/io/half.ts: halfToFloat, the one float16 -> number conversion the .npy, safetensors and torch
 * readers share, against an independent bitwise conversion (float16 bits -> float32 bits, the
 * subnormals normalised) on all 65536 bit patterns, and on a few values known by heart.
 */
import test from 'ava';
import { halfToFloat } from '../../lib/io/half';

/** The float32 bit pattern of the float16 with bits h, built field by field. */
function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  let exp = (h >> 10) & 0x1f;
  let man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0; // infinity, NaN (payload kept)
  if (exp === 0) {
    if (man === 0) return sign >>> 0; // signed zero
    exp = 1;
    while ((man & 0x400) === 0) {
      man <<= 1;
      exp--;
    }
    man &= 0x3ff;
  }
  return (sign | ((exp - 15 + 127) << 23) | (man << 13)) >>> 0;
}

test('halfToFloat: every float16 bit pattern, as the bitwise conversion', (t) => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let wrong = 0;
  let first = -1;
  for (let h = 0; h < 0x10000; h++) {
    const v = halfToFloat(h);
    u[0] = halfBitsToFloatBits(h);
    const ok = Number.isNaN(f[0]) ? Number.isNaN(v) : Object.is(v, f[0]);
    if (!ok) {
      wrong++;
      if (first < 0) first = h;
    }
  }
  t.is(wrong, 0, `first wrong pattern: 0x${first.toString(16)}`);
});

test('halfToFloat: known values', (t) => {
  t.is(halfToFloat(0x3c00), 1);
  t.is(halfToFloat(0xc000), -2);
  t.is(halfToFloat(0x3555), 0.333251953125);
  t.is(halfToFloat(0x7bff), 65504); // largest finite
  t.is(halfToFloat(0x0400), 2 ** -14); // smallest normal
  t.is(halfToFloat(0x0001), 2 ** -24); // smallest subnormal
  t.is(halfToFloat(0x03ff), 1023 * 2 ** -24); // largest subnormal
  t.true(Object.is(halfToFloat(0x8000), -0));
  t.is(halfToFloat(0x7c00), Infinity);
  t.is(halfToFloat(0xfc00), -Infinity);
  t.true(Number.isNaN(halfToFloat(0x7e00)));
});
