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

// Uniform in [0, 1) with 24 bits of resolution.
PSTAL_HD inline float uniform01(uint64_t seed, uint64_t i) {
  return (float)(splitmix64(seed * 0xD1B54A32D192ED03ULL ^ i) >> 40) * (1.0f / 16777216.0f);
}

// Dropout multiplier for element i: 0 with probability p, else 1 / (1 - p).
PSTAL_HD inline float dropout_scale(uint64_t seed, uint64_t i, float p) {
  return uniform01(seed, i) < p ? 0.f : 1.f / (1.f - p);
}

}  // namespace pstal
