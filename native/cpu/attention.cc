// ---------------------------------------------------------------------------------------------
// attention.cc: multi-head scaled-dot-product attention over all L tokens (no mask), the core of
// the Reliability-aware Attention Block (SPEC §2 step 2). Inputs are the already in-projected
// q, k, v [L, D]; head h is the column block [h*dh, (h+1)*dh), addressed with GEMM row strides,
// so no head split/merge copies are made. Heads run in parallel, one thread each.
//
//   P_h = softmax(Q_h K_h^T / sqrt(dh)),  O_h = dropout(P_h) V_h
//
// The forward saves P [H, L, L]; the dropout mask is regenerated from the seed in the backward.
// ---------------------------------------------------------------------------------------------
#include <cmath>

#include "common/parallel.h"
#include "common/rng.h"
#include "cpu/gemm.h"
#include "cpu/scratch.h"
#include "cpu/softmax.h"
#include "ops/attention.h"

namespace pstal {
namespace {

thread_local Scratch drop_scratch, grad_scratch, score_scratch;

// out[i] = in[i] * dropout_scale(seed, base + i, p): rng.h's arithmetic written out so that the
// compiler vectorizes it (the per-element call cost more than the softmax on long videos).
__attribute__((target_clones("avx2", "default"))) void apply_dropout(float* out, const float* in, int64_t n,
                                                                    uint64_t seed, uint64_t base, float p) {
  const float keep = 1.f / (1.f - p);
  const uint64_t key = seed * 0xD1B54A32D192ED03ULL;
  for (int64_t i = 0; i < n; i++) {
    uint64_t x = (key ^ (base + (uint64_t)i)) + 0x9E3779B97F4A7C15ULL;  // splitmix64
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    float u = (float)(int32_t)(x >> 40) * (1.0f / 16777216.0f);  // uniform01: 24 bits, exact in int32
    out[i] = in[i] * (u < p ? 0.f : keep);
  }
}

// Pd = P * mask for head h (or P itself without dropout).
const float* dropped(const float* P, int64_t h, int64_t L, float p, uint64_t seed) {
  if (p <= 0.f) return P;
  float* pd = drop_scratch.get((size_t)(L * L));
  apply_dropout(pd, P, L * L, seed, (uint64_t)h * L * L, p);
  return pd;
}

}  // namespace

// attention_forward(out, probs, q, k, v, L, D, H, dropout_p, seed). probs may be null when no
// gradient is needed (inference): each head's scores then live in a per-thread scratch, and the
// [H, L, L] buffer (27 MB for an 900-snippet video) is neither allocated nor written.
void attention_forward(const AttentionForward& op) {
  const auto& [L, D, H, p, seed, out, probs, q, k, v] = op;
  int64_t dh = D / H;
  float scale = 1.f / std::sqrt((float)dh);
  parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      float* P = probs ? probs + h * L * L : score_scratch.get((size_t)(L * L));
      sgemm_serial(false, true, L, L, dh, scale, q + h * dh, D, k + h * dh, D, 0.f, P, L);
      for (int64_t i = 0; i < L; i++) softmax_row(P + i * L, P + i * L, L, false);
      const float* Pd = dropped(P, h, L, (float)p, seed);
      sgemm_serial(false, false, L, dh, L, 1.f, Pd, L, v + h * dh, D, 0.f, out + h * dh, D);
    }
  });
}

// attention_backward(dq, dk, dv, dout, probs, q, k, v, L, D, H, dropout_p, seed)
void attention_backward(const AttentionBackward& op) {
  const auto& [L, D, H, p, seed, dq, dk, dv, dout, probs, q, k, v] = op;
  int64_t dh = D / H;
  float scale = 1.f / std::sqrt((float)dh);
  parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      const float* P = probs + h * L * L;
      const float* Pd = dropped(P, h, L, (float)p, seed);
      const float* dO = dout + h * dh;
      // dV = Pd^T dO
      sgemm_serial(true, false, L, dh, L, 1.f, Pd, L, dO, D, 0.f, dv + h * dh, D);
      // dPd = dO V^T, then through the mask and the softmax
      float* dP = grad_scratch.get((size_t)(L * L));
      sgemm_serial(false, true, L, L, dh, 1.f, dO, D, v + h * dh, D, 0.f, dP, L);
      if (p > 0) apply_dropout(dP, dP, L * L, seed, (uint64_t)h * L * L, (float)p);
      for (int64_t i = 0; i < L; i++) softmax_row_backward(dP + i * L, dP + i * L, P + i * L, L, false);
      // dQ = dS K * scale, dK = dS^T Q * scale
      sgemm_serial(false, false, L, dh, L, scale, dP, L, k + h * dh, D, 0.f, dq + h * dh, D);
      sgemm_serial(true, false, L, dh, L, scale, dP, L, q + h * dh, D, 0.f, dk + h * dh, D);
    }
  });
}

}  // namespace pstal
