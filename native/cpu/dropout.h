// dropout.h: the seeded dropout loops shared by the dropout op (elementwise.cc) and attention.
// Both compute rng.h's dropout_scale(seed, base + i, p) per element, written out so that the
// compiler vectorizes it (one call per element cost ~10x more); the same bits as rng.h.
#pragma once
#include <cstdint>

namespace pstal {
// out[i] = in[i] * dropout_scale(seed, base + i, p); out may alias in.
void apply_dropout(float* out, const float* in, int64_t n, uint64_t seed, uint64_t base, float p);
// For attention's probabilities: in[i] *= scale (the softmax's normalisation, >= 0), then
// out[i] = in[i] * dropout_scale(...) as apply_dropout, and in[i] is negated where element i is
// dropped, so that its sign bit carries the mask to the backward (read back, not hashed again).
void apply_dropout_mark(float* out, float* in, int64_t n, float scale, uint64_t seed, uint64_t base, float p);
}  // namespace pstal
