// ---------------------------------------------------------------------------------------------
// gemm.h: float32 matrix multiply, the hot path of every model (row-major throughout).
//
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C
//
// op(X) = X or X^T; lda/ldb/ldc are row strides, so a column block of a wider matrix (one
// attention head of [T, D]) is a valid operand. Our own kernel is always available; OpenBLAS is
// used instead, for benchmarks only, in a build with PSTAL_BENCH_OPENBLAS=1 when PSTAL_GEMM=openblas
// (or set_gemm_impl('openblas')) and libopenblas can be loaded. set_gemm_precision('bf16') (ops/matmul.h)
// makes every product that follows round its operands to bfloat16 (float32 accumulation).
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>

namespace pstal {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same, single-threaded: for callers that already parallelise over independent products.
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// "pstal" (ours) or "openblas" (benchmark builds only); returns false when it cannot be used.
bool select_gemm_impl(const std::string& name);
std::string gemm_impl();
std::string gemm_kernel_name();  // "avx512" / "avx2" / "generic", or "avx512-bf16" / "avx2-bf16-emulated" in bf16
bool gemm_bf16_supported();      // AVX512-BF16 (or PSTAL_GEMM_BF16=emulate): set_gemm_precision('bf16') is allowed
// The depth block of the current precision: a product over K = a + b with a a multiple of it, done
// as two calls (the second with beta = 1), gives the same bits as one call.
int64_t gemm_depth_block();

}  // namespace pstal
