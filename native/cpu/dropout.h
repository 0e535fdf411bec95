// dropout.h: the seeded dropout loops shared by the dropout op (elementwise.cc) and attention.
// Both compute rng.h's dropout_scale(seed, base + i, p) per element, written out so that the
// compiler vectorizes it (one call per element cost ~10x more); the same bits as rng.h.
#pragma once
#include <cstdint>

namespace pstal {
// out[i] = in[i] * dropout_scale(seed, base + i, p); out may alias in.
void apply_dropout(float* out, const float* in, int64_t n, uint64_t seed, uint64_t base, float p);
// mask[i] = dropout_scale(seed, base + i, p): 0 or 1 / (1 - p), to apply to more than one array.
void dropout_mask(float* mask, int64_t n, uint64_t seed, uint64_t base, float p);
}  // namespace pstal
