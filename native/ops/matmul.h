// ---------------------------------------------------------------------------------------------
// matmul.h: batched matrix products on the GEMM (lib/ops/matmul.ts), and the GEMM settings.
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/matmul.cc; the kernels behind these signatures are native/cpu/matmul.cc (the reference) and
// native/cuda/matmul.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/info.h"

namespace pstal {

// matmul_forward(out, a, b, batch, M, N, K, trans_a, trans_b, a_batch_stride, b_batch_stride, beta)
//   out[bi] (M x N) = op(a[bi]) op(b[bi]) + beta * out[bi]; a batch stride of 0 broadcasts one
//   operand over the batch. Backward is two more matmuls (lib/ops/matmul.ts).
struct MatmulForward {
  int64_t batch;
  int64_t M;
  int64_t N;
  int64_t K;
  bool ta;
  bool tb;
  int64_t sa;
  int64_t sb;
  double beta;
  float* out;
  const float* a;
  const float* b;
};
void matmul_forward(const MatmulForward& a);

// { impl, kernel, openblasAvailable, threads, precision, bf16Supported } on both backends, plus tf32
// and cublasVersion on CUDA.
Info gemm_info();

// Selects the GEMM implementation: 'pstal' on the CPU ('openblas' too in a benchmark build),
// 'cublas' on CUDA. Throws OpError naming what this backend accepts.
void set_gemm_impl(const std::string& impl);

// The GEMM's operand precision for every product that follows: 'fp32' (the default) or 'bf16'
// (operands rounded to bfloat16, float32 accumulation; CPU with AVX512-BF16 only). Throws OpError
// when this backend or CPU cannot.
void set_gemm_precision(const std::string& precision);

}  // namespace pstal
