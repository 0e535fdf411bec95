// ---------------------------------------------------------------------------------------------
// attention.cu: the CUDA twin of native/cpu/attention.cc (the readable reference: same ops,
// arguments, checks and dropout masks). Multi-head scaled-dot-product attention
// over all Lk tokens (no mask) on in-projected q [Lq, D] (the first Lq <= Lk tokens' queries),
// k, v [Lk, D]; head h is the column block [h*dh, (h+1)*dh), so each product is one
// strided-batched GEMM over the heads (batch stride dh on the [L, D] operands, lda = D; Lq*Lk on
// the [H, Lq, Lk] ones) with no split/merge copies.
//
//   P_h = softmax(Q_h K_h^T / sqrt(dh)),  O_h = dropout(P_h) V_h
//
// The forward saves P [H, Lq, Lk] (before dropout). The dropout mask is the CPU's counter-based
// one (native/common/rng.h), evaluated per element on the device with the element's index in
// the full [H, Lk, Lk] matrix (mask_index), so both backends drop the same weights; here the backward regenerates the mask (the
// hash is cheap on the device), where the CPU keeps it in the sign bits of its saved P. The saved
// buffer is private to each backend's own backward.
// Row softmax (forward, fused with the mask) and its backward (fused with the mask) use one
// warp per row with shuffle reductions; like the CPU, the exp sum and the backward's dot
// product accumulate in double.
//
// Numerics against the CPU: GEMMs differ by float32 summation order (cuBLAS); expf on the device
// is within 2 ulp of glibc's; row max, masks and scalings are exact. Relative differences are of
// order 1e-6.
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <cstdint>
#include <string>

#include "common/rng.h"
#include "cuda/common.cuh"
#include "cuda/gemm.h"
#include "ops/attention.h"

namespace pstal {
namespace {

// ---- row kernels: one warp per row of [rows, L] ----------------------------------------------

constexpr int kWarpsPerBlock = 8;

__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

__device__ inline double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Row r of the [H, Lq, Lk] weights (head r / Lq, query r % Lq) starts at this element number of
// the full [H, Lk, Lk] matrix: the dropout mask's numbering, as on the CPU.
__device__ inline uint64_t mask_row_base(int64_t r, int64_t Lq, int64_t Lk) {
  return (uint64_t)(((r / Lq) * Lk + r % Lq) * Lk);
}

unsigned row_blocks(int64_t rows) {
  int64_t b = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return (unsigned)b;
}

// P (scaled scores on entry) <- softmax rows; Pd = P * mask when pd != nullptr.
__global__ void softmax_dropout_kernel(float* P, float* __restrict__ pd, int64_t rows, int64_t Lq, int64_t L, float p,
                                       uint64_t seed) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * kWarpsPerBlock;
  for (int64_t r = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5); r < rows; r += warps) {
    float* x = P + r * L;
    const uint64_t base = mask_row_base(r, Lq, L);
    float m = -INFINITY;
    for (int64_t j = lane; j < L; j += 32) m = x[j] > m ? x[j] : m;
    m = warp_max(m);
    double s = 0.0;
    for (int64_t j = lane; j < L; j += 32) s += (double)expf(x[j] - m);
    s = warp_sum(s);
    const float inv = (float)(1.0 / s);
    for (int64_t j = lane; j < L; j += 32) {
      float y = expf(x[j] - m) * inv;
      x[j] = y;
      if (pd) pd[r * L + j] = y * dropout_scale(seed, base + j, p);
    }
  }
}

// pd = P * mask over all H*Lq*Lk weights (the backward's copy of the forward's dropped weights).
__global__ void dropout_apply_kernel(float* __restrict__ pd, const float* __restrict__ P, int64_t n, int64_t Lq, int64_t L,
                                     float p, uint64_t seed) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    pd[i] = P[i] * dropout_scale(seed, mask_row_base(i / L, Lq, L) + i % L, p);
}

// dP (dO V^T on entry, in place) <- dS = P * (g - sum(g * P)), g = dP * mask (mask when p > 0).
__global__ void softmax_dropout_backward_kernel(float* dP, const float* __restrict__ P, int64_t rows, int64_t Lq, int64_t L,
                                                float p, uint64_t seed) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * kWarpsPerBlock;
  const bool drop = p > 0.f;
  for (int64_t r = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5); r < rows; r += warps) {
    float* g = dP + r * L;
    const float* y = P + r * L;
    const uint64_t base = mask_row_base(r, Lq, L);
    double s = 0.0;
    for (int64_t j = lane; j < L; j += 32) {
      float gj = drop ? g[j] * dropout_scale(seed, base + j, p) : g[j];
      s += (double)gj * (double)y[j];
    }
    const float fs = (float)warp_sum(s);
    for (int64_t j = lane; j < L; j += 32) {
      float gj = drop ? g[j] * dropout_scale(seed, base + j, p) : g[j];
      g[j] = y[j] * (gj - fs);
    }
  }
}

}  // namespace

// attention_forward(out, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed)
void attention_forward(const AttentionForward& op) {
  const auto& [Lq, L, D, H, p, seed, out, given_probs, q, k, v] = op;
  // Without a probs buffer (inference) the scores live in scratch.
  cuda::DeviceScratch probs_scratch(given_probs ? 0 : (size_t)(H * Lq * L) * sizeof(float));
  float* probs = given_probs ? given_probs : probs_scratch.as<float>();
  const int64_t dh = D / H;
  const float scale = 1.f / std::sqrt((float)dh);
  const float pf = (float)p;
  const bool drop = pf > 0.f;  // the CPU's dropped(): no mask when (float)p <= 0
  // S = scale * Q_h K_h^T into probs [H, Lq, L].
  cuda::sgemm_strided_batched(false, true, Lq, L, dh, scale, q, D, dh, k, D, dh, 0.f, probs, L, Lq * L, H);
  cuda::DeviceScratch pd_scratch(drop ? (size_t)(H * Lq * L) * sizeof(float) : 0);
  float* pd = drop ? pd_scratch.as<float>() : nullptr;
  softmax_dropout_kernel<<<row_blocks(H * Lq), kWarpsPerBlock * 32, 0, cuda::stream()>>>(probs, pd, H * Lq, Lq, L, pf, seed);
  PSTAL_CUDA_LAUNCH();
  // O_h = Pd_h V_h, written into the column block of out.
  cuda::sgemm_strided_batched(false, false, Lq, dh, L, 1.f, drop ? pd : probs, L, Lq * L, v, D, dh, 0.f, out, D, dh, H);
}

// attention_backward(dq, dk, dv, dout, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed)
void attention_backward(const AttentionBackward& op) {
  const auto& [Lq, L, D, H, p, seed, dq, dk, dv, dout, probs, q, k, v] = op;
  const int64_t dh = D / H;
  const float scale = 1.f / std::sqrt((float)dh);
  const float pf = (float)p;
  const bool drop = pf > 0.f;
  cudaStream_t st = cuda::stream();
  // One [H, Lq, L] scratch: first the dropped weights Pd (for dV), then dP / dS (the stream
  // orders the reuse: the dV GEMM has read Pd before the dP GEMM overwrites it).
  cuda::DeviceScratch scratch((size_t)(H * Lq * L) * sizeof(float));
  float* work = scratch.as<float>();
  const float* Pd = probs;
  if (drop) {
    dropout_apply_kernel<<<cuda::blocks_for(H * Lq * L), 256, 0, st>>>(work, probs, H * Lq * L, Lq, L, pf, seed);
    PSTAL_CUDA_LAUNCH();
    Pd = work;
  }
  // dV_h = Pd_h^T dO_h
  cuda::sgemm_strided_batched(true, false, L, dh, Lq, 1.f, Pd, L, Lq * L, dout, D, dh, 0.f, dv, D, dh, H);
  // dPd_h = dO_h V_h^T, then through the mask and the softmax
  cuda::sgemm_strided_batched(false, true, Lq, L, dh, 1.f, dout, D, dh, v, D, dh, 0.f, work, L, Lq * L, H);
  softmax_dropout_backward_kernel<<<row_blocks(H * Lq), kWarpsPerBlock * 32, 0, st>>>(work, probs, H * Lq, Lq, L, pf, seed);
  PSTAL_CUDA_LAUNCH();
  // dQ_h = dS_h K_h * scale, dK_h = dS_h^T Q_h * scale
  cuda::sgemm_strided_batched(false, false, Lq, dh, L, scale, work, L, Lq * L, k, D, dh, 0.f, dq, D, dh, H);
  cuda::sgemm_strided_batched(true, false, L, dh, Lq, scale, work, L, Lq * L, q, D, dh, 0.f, dk, D, dh, H);
}

}  // namespace pstal
