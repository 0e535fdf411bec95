// ---------------------------------------------------------------------------------------------
// synth.cc: the per-element part of synthetic features (lib/data/synth.ts), which is ~90% of the
// work at D = 2048: per-element AR(1) noise read from a normal table, the low-rank product
// Z [T, K] x B [K, D] added on top, and the smooth ReLU that makes the features non-negative.
//
//   n[0, d] = scale[0] * table[off[0] + d]
//   n[t, d] = phi * n[t-1, d] + scale[t] * table[off[t] + d]
//   x[t, d] = g(n[t, d] + (Z B)[t, d] + offset),  g(x) = 0 (x <= -w), s (x + w)^2 / (4w) (|x| < w),
//                                                        s x (x >= w)
// The TypeScript fallback in lib/data/synth.ts computes the same thing.
// ---------------------------------------------------------------------------------------------
#include <algorithm>

#include "common/parallel.h"
#include "cpu/gemm.h"
#include "ops/synth.h"

namespace pstal {

// synth_features(x Float32Array [T*D] (written), z Float32Array [T*K], b Float32Array [K*D],
//   table Float32Array, off Int32Array [T], scale Float32Array [T], T, D, K, phi, offset, width, out_scale)
void synth_features(const SynthFeatures& op) {
  const auto& [nx, nz, nb, ntab, noff, nsc, x, z, b, table, off, scale, T, D, K, phi, offset, w, s] = op;
  // noise: independent along d, recursive along t, so threads take column blocks
  const int64_t block = 256;
  parallel_for((D + block - 1) / block, 1, [&](int64_t b0, int64_t b1) {
    int64_t d0 = b0 * block, d1 = std::min(D, b1 * block);
    for (int64_t d = d0; d < d1; d++) x[d] = scale[0] * table[off[0] + d];
    for (int64_t t = 1; t < T; t++) {
      float* row = x + t * D;
      const float* prev = row - D;
      const float* tab = table + off[t];
      float sc = scale[t];
      for (int64_t d = d0; d < d1; d++) row[d] = phi * prev[d] + sc * tab[d];
    }
  });
  if (K > 0) sgemm(false, false, T, D, K, 1.f, z, K, b, D, 1.f, x, D);
  const float q = s / (4.f * w);
  parallel_for(T, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t i = t0 * D; i < t1 * D; i++) {
      float v = x[i] + offset;
      x[i] = v >= w ? s * v : (v <= -w ? 0.f : q * (v + w) * (v + w));
    }
  });
}

}  // namespace pstal
