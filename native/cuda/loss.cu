// ---------------------------------------------------------------------------------------------
// loss.cu: the CUDA twin of native/cpu/loss.cc (the readable reference): elementwise losses and
// their gradients; lib/ops/loss.ts applies weights and the reduction (mean / sum) with other ops,
// so nothing here returns a scalar or synchronises.
//   BCE       l = -(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch does
//   smooth L1 l = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = a - b
//   MSE       l = d^2
// Arguments are read and checked once, in native/ops/. Float operations are
// the CPU's in the CPU's order (no FMA contraction); clamps use the CPU's std::max semantics (a NaN
// first argument passes through). BCE's logf is CUDA's, within 1 ulp of glibc's.
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>

#include "cuda/common.cuh"
#include "ops/loss.h"

namespace pstal {
namespace {

enum Loss { BCE = 0, SMOOTH_L1 = 1, MSE = 2 };

// std::max(a, b) exactly: (a < b) ? b : a.
__device__ __forceinline__ float std_max(float a, float b) { return a < b ? b : a; }

template <int KIND>
__global__ void loss_forward_kernel(float* out, const float* a, const float* b, int64_t n, float beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float ai = a[i], bi = b[i];
    if (KIND == BCE) {
      float lp = std_max(logf(ai), -100.f), lq = std_max(logf(1.f - ai), -100.f);
      out[i] = -__fadd_rn(__fmul_rn(bi, lp), __fmul_rn(1.f - bi, lq));
    } else {
      float d = ai - bi, ad = fabsf(d);
      out[i] = KIND == MSE ? __fmul_rn(d, d)
                           : (ad < beta ? __fdiv_rn(__fmul_rn(__fmul_rn(0.5f, d), d), beta) : __fsub_rn(ad, __fmul_rn(0.5f, beta)));
    }
  }
}

template <int KIND>
__global__ void loss_backward_kernel(float* da, const float* g, const float* a, const float* b, int64_t n, float beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float ai = a[i], bi = b[i];
    if (KIND == BCE) {
      da[i] = __fdiv_rn(__fmul_rn(g[i], ai - bi), std_max(__fmul_rn(1.f - ai, ai), 1e-12f));
    } else {
      float d = ai - bi;
      float dd = KIND == MSE ? __fmul_rn(2.f, d) : (fabsf(d) < beta ? __fdiv_rn(d, beta) : (d > 0 ? 1.f : (d < 0 ? -1.f : 0.f)));
      da[i] = __fmul_rn(g[i], dd);
    }
  }
}

}  // namespace

// loss_forward(kind, out, a, b, n, beta)   (BCE: a = p, b = target)
void loss_forward(const LossForward& op) {
  const auto& [kind, n, beta, out, a, b] = op;
  if (n <= 0) return;
  unsigned grid = cuda::blocks_for(n);
  if (kind == BCE)
    loss_forward_kernel<BCE><<<grid, 256, 0, cuda::stream()>>>(out, a, b, n, beta);
  else if (kind == SMOOTH_L1)
    loss_forward_kernel<SMOOTH_L1><<<grid, 256, 0, cuda::stream()>>>(out, a, b, n, beta);
  else
    loss_forward_kernel<MSE><<<grid, 256, 0, cuda::stream()>>>(out, a, b, n, beta);
  PSTAL_CUDA_LAUNCH();
}

// loss_backward(kind, da, dout, a, b, n, beta): gradient with respect to a (for b it is -da, except BCE)
void loss_backward(const LossBackward& op) {
  const auto& [kind, n, beta, da, g, a, b] = op;
  if (n <= 0) return;
  unsigned grid = cuda::blocks_for(n);
  if (kind == BCE)
    loss_backward_kernel<BCE><<<grid, 256, 0, cuda::stream()>>>(da, g, a, b, n, beta);
  else if (kind == SMOOTH_L1)
    loss_backward_kernel<SMOOTH_L1><<<grid, 256, 0, cuda::stream()>>>(da, g, a, b, n, beta);
  else
    loss_backward_kernel<MSE><<<grid, 256, 0, cuda::stream()>>>(da, g, a, b, n, beta);
  PSTAL_CUDA_LAUNCH();
}

// ---- the focal BCE: this backend's kernels of the separate ops in a row (ops/loss.h focal_bce_chain) --

void focal_bce_forward(const FocalBce& a) {
  cuda::DeviceScratch w((size_t)focal_bce_work(a.n) * sizeof(float));
  focal_bce_chain(a, w.as<float>(), false);
}

void focal_bce_backward(const FocalBce& a) {
  cuda::DeviceScratch w((size_t)focal_bce_work(a.n) * sizeof(float));
  focal_bce_chain(a, w.as<float>(), true);
}

void similarity_mean_forward(const SimilarityMean& a) {
  cuda::DeviceScratch w((size_t)similarity_mean_work(a.R, a.D, a.C) * sizeof(float));
  similarity_mean_chain(a, w.as<float>(), false);
}

void similarity_mean_backward(const SimilarityMean& a) {
  cuda::DeviceScratch w((size_t)similarity_mean_work(a.R, a.D, a.C) * sizeof(float));
  similarity_mean_chain(a, w.as<float>(), true);
}

void contrastive_terms_forward(const ContrastiveTerms& a) {
  cuda::DeviceScratch w((size_t)contrastive_terms_work(a.K) * sizeof(float));
  contrastive_terms_chain(a, w.as<float>(), false);
}

void contrastive_terms_backward(const ContrastiveTerms& a) {
  cuda::DeviceScratch w((size_t)contrastive_terms_work(a.K) * sizeof(float));
  contrastive_terms_chain(a, w.as<float>(), true);
}

}  // namespace pstal
