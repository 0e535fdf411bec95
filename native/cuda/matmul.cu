// ---------------------------------------------------------------------------------------------
// matmul.cu: the CUDA backend's float32 GEMM on cuBLAS (the only file that includes cuBLAS), and
// the ops of native/cpu/matmul.cc with the same names and arguments.
//
// cuBLAS is column-major; our matrices are row-major. A row-major X [r, c] with row stride ld is
// the column-major X^T [c, r] with leading dimension ld, so
//   row-major C = op(A) op(B)   <=>   column-major C^T = op(B)^T op(A)^T,
// i.e. call cuBLAS with the operands swapped (B first), the transpose flags kept, m = N, n = M,
// and the same leading dimensions. One cuBLAS handle per host thread (a handle is not safe to use
// from two threads at once), bound to that thread's stream(), so GEMMs are ordered with the
// thread's other ops; it is destroyed when the thread's environment ends (mem::thread_exit,
// memory.cu). A handle per stream also keeps the results bitwise the same when several streams
// run GEMMs at once (cuBLAS's results-reproducibility rule: a shared handle's workspace choice may
// differ then). TF32 is off (CUBLAS_DEFAULT_MATH: plain float32 FMA, as the CPU backend) unless
// set_tf32(true) or PSTAL_TF32=1 (CUBLAS_TF32_TENSOR_OP_MATH); set_tf32 sets the calling
// thread's flag only, and each thread starts from PSTAL_TF32 as it was when the addon loaded.
// Every cublasStatus_t is checked and becomes an OpError naming the call.
// ---------------------------------------------------------------------------------------------
#include "cuda/gemm.h"

#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>

#include "common/parallel.h"
#include "common/rng.h"
#include "cuda/common.cuh"
#include "ops/matmul.h"

namespace pstal {
namespace cuda {
namespace {

[[noreturn]] void fail_cublas(cublasStatus_t s, const char* what, int line) {
  throw OpError(std::string("cuBLAS error ") + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ") in " +
                what + " at matmul.cu:" + std::to_string(line));
}

#define PSTAL_CUBLAS_CHECK(expr)                                                        \
  do {                                                                                  \
    cublasStatus_t pstal_s_ = (expr);                                                   \
    if (pstal_s_ != CUBLAS_STATUS_SUCCESS) fail_cublas(pstal_s_, #expr, __LINE__);      \
  } while (0)

// PSTAL_TF32 read once, when the addon loads (getenv on a worker thread could race with a setenv
// on the main thread).
const bool tf32_default = [] {
  const char* e = std::getenv("PSTAL_TF32");
  return e && std::string(e) == "1";
}();

// This thread's TF32 flag (-1: not set here, tf32_default) and cuBLAS handle (null until its first
// GEMM, and after release_thread_blas). Plain values: nothing runs for them when the thread ends.
thread_local int tf32_state = -1;
thread_local cublasHandle_t thread_handle = nullptr;

bool tf32_on() { return tf32_state < 0 ? tf32_default : tf32_state != 0; }

cublasMath_t math_mode() { return tf32_on() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH; }

// This thread's handle, created on first use (after the addon has checked that a device exists).
cublasHandle_t handle() {
  if (!thread_handle) {
    cudaStream_t st = stream();  // may throw: before the handle exists
    cublasHandle_t c = nullptr;
    PSTAL_CUBLAS_CHECK(cublasCreate(&c));
    cublasStatus_t s = cublasSetStream(c, st);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(c, math_mode());
    if (s != CUBLAS_STATUS_SUCCESS) {
      cublasDestroy(c);
      fail_cublas(s, "cublasSetStream / cublasSetMathMode", __LINE__);
    }
    thread_handle = c;
  }
  return thread_handle;
}

// cuBLAS takes int dimensions.
int as_int(int64_t v, const char* name) {
  if (v < 0 || v > INT_MAX)
    throw OpError(std::string("GEMM ") + name + " = " + std::to_string(v) + " is outside cuBLAS's int range");
  return (int)v;
}

cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

// C = beta * C for the K = 0 (or alpha = 0) case, which cuBLAS would reject (a leading dimension
// of 0) or which needs no product. beta == 0 writes zeros without reading C (BLAS semantics).
__global__ void scale_kernel(float* __restrict__ C, int64_t M, int64_t N, int64_t ldc, int64_t strideC, int64_t batch,
                             float beta) {
  const int64_t total = batch * M * N;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t b = i / (M * N), r = (i / N) % M, c = i % N;
    float* p = C + b * strideC + r * ldc + c;
    *p = beta == 0.f ? 0.f : beta * *p;
  }
}

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc, int64_t strideC, int64_t batch) {
  if (beta == 1.f) return;
  scale_kernel<<<blocks_for(batch * M * N), 256, 0, stream()>>>(C, M, N, ldc, strideC, batch, beta);
  PSTAL_CUDA_LAUNCH();
}

}  // namespace

void set_tf32(bool on) {
  tf32_state = on ? 1 : 0;
  if (thread_handle) PSTAL_CUBLAS_CHECK(cublasSetMathMode(thread_handle, math_mode()));  // else set when it is made
}

bool tf32() { return tf32_on(); }

void release_thread_blas() {
  if (!thread_handle) return;
  cublasDestroy(thread_handle);  // a failure leaves nothing to do: the thread is ending
  thread_handle = nullptr;
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale_c(M, N, beta, C, ldc, 0, 1);
  const int m = as_int(N, "N"), n = as_int(M, "M"), k = as_int(K, "K");
  // Column-major C^T [N, M] = op(B)^T [N, K] * op(A)^T [K, M]: B is cuBLAS's first operand.
  count_launch();
  PSTAL_CUBLAS_CHECK(cublasSgemm(handle(), op(trans_b), op(trans_a), m, n, k, &alpha, B, as_int(ldb, "ldb"), A,
                                 as_int(lda, "lda"), &beta, C, as_int(ldc, "ldc")));
}

void sgemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                           int64_t lda, int64_t strideA, const float* B, int64_t ldb, int64_t strideB, float beta,
                           float* C, int64_t ldc, int64_t strideC, int64_t batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale_c(M, N, beta, C, ldc, strideC, batch);
  if (batch == 1) return sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const int m = as_int(N, "N"), n = as_int(M, "M"), k = as_int(K, "K");
  const int ild_a = as_int(lda, "lda"), ild_b = as_int(ldb, "ldb"), ild_c = as_int(ldc, "ldc");
  // Chunks of at most 65535 products: older cuBLAS versions put the batch on grid.z.
  constexpr int64_t kMaxBatch = 65535;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxBatch) {
    const int nb = (int)std::min(kMaxBatch, batch - b0);
    count_launch();
    PSTAL_CUBLAS_CHECK(cublasSgemmStridedBatched(handle(), op(trans_b), op(trans_a), m, n, k, &alpha, B + b0 * strideB,
                                                 ild_b, (long long)strideB, A + b0 * strideA, ild_a, (long long)strideA,
                                                 &beta, C + b0 * strideC, ild_c, (long long)strideC, nb));
  }
}

}  // namespace cuda

// ---- ops (native/cpu/matmul.cc's, same arguments) -----------------------------------------------

// matmul_forward(out, a, b, batch, M, N, K, trans_a, trans_b, a_batch_stride, b_batch_stride, beta)
//   out[bi] (M x N) = op(a[bi]) op(b[bi]) + beta * out[bi]; a batch stride of 0 broadcasts one
//   operand over the batch. One strided-batched cuBLAS call for the whole batch.
// accumulate: cuBLAS's beta = 1 (out += the product in one call; the CPU sums the product whole
// first, so the two agree to float rounding, as every GEMM does).
void matmul_forward(const MatmulForward& op) {
  const auto& [batch, M, N, K, ta, tb, sa, sb, beta, out, a, b, accumulate] = op;
  // Leading dimensions at least 1, as cuBLAS requires (a 0 only occurs with an empty operand).
  int64_t lda = std::max<int64_t>(ta ? M : K, 1), ldb = std::max<int64_t>(tb ? K : N, 1);
  cuda::sgemm_strided_batched(ta, tb, M, N, K, 1.f, a, lda, sa, b, ldb, sb, accumulate ? 1.f : (float)beta, out,
                              std::max<int64_t>(N, 1), M * N, batch);
}

// ---- linear (native/cpu/matmul.cc's): the GEMM on cuBLAS, the epilogue and relu's mask as kernels --

namespace {

// bias, relu, then dropout (the dropout kernel's mask and scale: common/rng.h, numbered over [M, N])
__global__ void linear_epilogue_kernel(float* __restrict__ out, const float* __restrict__ bias, int64_t M, int64_t N,
                                       bool relu, float p, uint64_t seed, float keep) {
  const int64_t n = M * N;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = out[i];
    if (bias) v = __fadd_rn(v, bias[i % N]);
    if (relu) v = v > 0.f ? v : 0.f;
    if (p > 0.f) v = __fmul_rn(v, uniform01(seed, (uint64_t)i) < p ? 0.f : keep);
    out[i] = v;
  }
}

// dropout's backward (p > 0), then relu's (y given)
__global__ void linear_grad_kernel(float* __restrict__ gr, const float* __restrict__ g, const float* __restrict__ y,
                                   int64_t n, float p, uint64_t seed, float keep) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = g[i];
    if (p > 0.f) v = __fmul_rn(v, uniform01(seed, (uint64_t)i) < p ? 0.f : keep);
    if (y) v = __fmul_rn(v, y[i] > 0.f ? 1.f : 0.f);
    gr[i] = v;
  }
}

// db (+)= g summed over rows, one thread a column, rows in order (sum_to's order)
__global__ void bias_grad_kernel(float* __restrict__ db, const float* __restrict__ g, int64_t M, int64_t N, bool acc) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int64_t r = 0; r < M; r++) s += g[r * N + j];
    db[j] = acc ? db[j] + s : s;
  }
}

}  // namespace

void linear_forward(const LinearForward& a) {
  const int64_t M = a.M, N = a.N, K = a.K;
  if (M == 0 || N == 0) return;
  cuda::sgemm_strided_batched(false, true, M, N, K, 1.f, a.x, std::max<int64_t>(K, 1), 0, a.w, std::max<int64_t>(K, 1),
                              0, 0.f, a.out, N, M * N, 1);
  if (!a.bias && !a.relu && a.p == 0.f) return;
  const float keep = 1.f / (1.f - a.p);
  linear_epilogue_kernel<<<cuda::blocks_for(M * N), 256, 0, cuda::stream()>>>(a.out, a.bias, M, N, a.relu, a.p, a.seed, keep);
  PSTAL_CUDA_LAUNCH();
}

void linear_backward(const LinearBackward& a) {
  const int64_t M = a.M, N = a.N, K = a.K;
  const float* g = a.g;
  cuda::DeviceScratch gr;
  if ((a.y || a.p > 0.f) && M * N > 0) {
    gr = cuda::DeviceScratch((size_t)(M * N) * sizeof(float));
    const float keep = 1.f / (1.f - a.p);
    linear_grad_kernel<<<cuda::blocks_for(M * N), 256, 0, cuda::stream()>>>(gr.as<float>(), a.g, a.y, M * N, a.p, a.seed, keep);
    PSTAL_CUDA_LAUNCH();
    g = gr.as<float>();
  }
  if (a.dx) matmul_forward(MatmulForward{1, M, K, N, false, false, 0, 0, 0.0, a.dx, g, a.w, a.acc_x});
  if (a.dw) matmul_forward(MatmulForward{1, N, K, M, true, false, 0, 0, 0.0, a.dw, g, a.x, a.acc_w});
  if (a.db && N > 0) {
    bias_grad_kernel<<<cuda::blocks_for(N), 256, 0, cuda::stream()>>>(a.db, g, M, N, a.acc_b);
    PSTAL_CUDA_LAUNCH();
  }
}

// Same keys as the CPU backend's where they mean something, plus tf32 and the cuBLAS version.
Info gemm_info() {
  int version = 0;
  cublasStatus_t s = cublasGetVersion(cuda::handle(), &version);
  Info i;
  i.str("impl", "cublas").str("kernel", cuda::tf32() ? "cublas-tf32" : "cublas-fp32").flag("tf32", cuda::tf32());
  i.flag("openblasAvailable", false).num("threads", num_threads());  // host threads (parallel.cc), for parity
  i.num("cublasVersion", s == CUBLAS_STATUS_SUCCESS ? version : 0);
  i.str("precision", "fp32").flag("bf16Supported", false);  // the CPU keys; bf16 is the CPU backend's
  return i;
}

void set_gemm_impl(const std::string& name) {
  if (name != "cublas")
    throw OpError("the CUDA backend's GEMM is cuBLAS: impl must be 'cublas', received '" + name +
                  "' ('pstal' and 'openblas' are the CPU backend's; use set_tf32 for tensor cores)");
}

void set_gemm_precision(const std::string& precision) {
  if (precision != "fp32")
    throw OpError("the CUDA backend's GEMM precision is 'fp32' (or TF32 with set_tf32): received '" + precision +
                  "' ('bf16' is the CPU backend's, with AVX512-BF16)");
}

}  // namespace pstal
