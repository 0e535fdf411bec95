// ---------------------------------------------------------------------------------------------
// gemm.h: the CUDA backend's float32 matrix multiplies, through cuBLAS (matmul.cu is the only file
// that includes cuBLAS, so every other .cu compiles where the toolkit has no cuBLAS).
//
// Same contract as native/cpu/gemm.h, row-major throughout:
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C,  op(X) = X or X^T,
// lda/ldb/ldc are row strides. The batched form steps A, B, C by strideA/B/C elements per batch
// (cublasSgemmStridedBatched), as attention does per head. TF32 is off unless set_tf32(true)
// (PSTAL_TF32=1), so results agree with the CPU backend to float32 rounding. The GEMMs run on the
// calling thread's stream with that thread's cuBLAS handle and TF32 flag (matmul.cu).
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>

namespace pstal {
namespace cuda {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

void sgemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                           int64_t lda, int64_t strideA, const float* B, int64_t ldb, int64_t strideB, float beta,
                           float* C, int64_t ldc, int64_t strideC, int64_t batch);

// The calling thread's TF32 flag (each thread starts from PSTAL_TF32).
void set_tf32(bool on);
bool tf32();

// Destroys the calling thread's cuBLAS handle, if it made one (mem::thread_exit, memory.cu: its
// stream has been synchronised and is about to be destroyed).
void release_thread_blas();

}  // namespace cuda
}  // namespace pstal
