// ---------------------------------------------------------------------------------------------
// rng.h: counter-based random numbers for dropout. u(seed, i) depends only on the seed and the
// element index, so a backward pass regenerates the forward pass's mask instead of storing it,
// results do not depend on the thread count, and the CUDA backend can reproduce the same masks.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>

#include "common/hd.h"

namespace pstal {

PSTAL_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Wellons' "lowbias32": a bijective 32-bit mixer of two 32-bit multiplies, which SIMD lanes do
// natively (AVX2 has no 64-bit multiply: splitmix64 per element cost three 32-bit ones per 64-bit
// one, and was a fifth of attention's training forward).
PSTAL_HD inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352DU;
  x ^= x >> 15;
  x *= 0x846CA68BU;
  x ^= x >> 16;
  return x;
}

// The key of elements [hi 2^32, (hi + 1) 2^32) of a seed's stream (hi = i >> 32): splitmix64 once
// per seed and block, so every block and seed gets its own key.
PSTAL_HD inline uint32_t dropout_key(uint64_t seed, uint64_t hi) {
  return (uint32_t)(splitmix64(seed * 0xD1B54A32D192ED03ULL ^ hi) >> 32);
}

// 24 uniform bits of element i: mix32 of its low 32 bits with its block's key.
PSTAL_HD inline uint32_t dropout_bits(uint32_t key, uint32_t lo) { return mix32(lo ^ key) >> 8; }

// Uniform in [0, 1) with 24 bits of resolution.
PSTAL_HD inline float uniform01(uint64_t seed, uint64_t i) {
  return (float)dropout_bits(dropout_key(seed, i >> 32), (uint32_t)i) * (1.0f / 16777216.0f);
}

// Dropout multiplier for element i: 0 with probability p, else 1 / (1 - p).
PSTAL_HD inline float dropout_scale(uint64_t seed, uint64_t i, float p) {
  return uniform01(seed, i) < p ? 0.f : 1.f / (1.f - p);
}

}  // namespace pstal
