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

// matmul_forward(out, a, b, batch, M, N, K, trans_a, trans_b, a_batch_stride, b_batch_stride, beta, accumulate)
//   out[bi] (M x N) = op(a[bi]) op(b[bi]) + beta * out[bi]; a batch stride of 0 broadcasts one
//   operand over the batch. Backward is two more matmuls (lib/ops/matmul.ts). accumulate (beta must
//   be 0): out += the product, the product summed whole first, so a gradient added into a `.grad`
//   gets the bits of a product into a temporary and an axpy (the CPU's order; CUDA uses beta = 1).
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
  bool accumulate;
};
void matmul_forward(const MatmulForward& a);

// linear_forward(out, x, w, bias|null, M, N, K, relu[, dropout_p, seed])
//   out [M, N] = x [M, K] w^T (w [N, K]), + bias [N] on every row, then relu when asked, then
//   dropout(., p, seed) when p > 0: the product, the broadcast add, the activation and the dropout
//   of lib/nn's Linear, ReLU and Dropout in one call, each value the same bits as the ops one after
//   another (the dropout mask numbered over the whole [M, N] output, as the dropout op's).
struct LinearForward {
  int64_t M, N, K;
  bool relu;
  float p;
  uint64_t seed;
  float* out;
  const float* x;
  const float* w;
  const float* bias;  // may be null
};
void linear_forward(const LinearForward& a);

// linear_backward(dx|null, dw|null, db|null, g, x, w, y|null, M, N, K, acc_x, acc_w, acc_b[, dropout_p, seed])
//   The gradients of linear_forward: with p > 0, g first goes through the dropout's mask (the
//   dropout op's backward); with y (the forward's output) given, then times relu'(y) (y > 0 exactly
//   where the relu's input was and the element was kept; a dropped element's gradient is a zero of
//   g's sign either way); then
//   dx = g w, dw = g^T x, db = g summed over rows (sum_to's order). A null output is not computed;
//   acc_*: added into that output (the value whole first, as matmul_forward's accumulate) instead of
//   written.
struct LinearBackward {
  int64_t M, N, K;
  bool acc_x, acc_w, acc_b;
  float* dx;
  float* dw;
  float* db;
  const float* g;
  const float* x;
  const float* w;
  const float* y;  // may be null (no relu)
  float p;
  uint64_t seed;
};
void linear_backward(const LinearBackward& a);

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
