// ---------------------------------------------------------------------------------------------
// conv.cu: the CUDA twin of native/cpu/conv.cc (the readable reference: same ops, same
// arguments, same checks and messages). 1-D convolution over time, weight [Cout, Cin, k],
// time-major x [T, Cin] -> y [T_out, Cout], T_out = T + 2 pad - k + 1.
//
// As on the CPU, im2col makes it one GEMM: X_col[t, i*k + j] = x[t + j - pad, i] (zero outside),
// so W viewed as [Cout, Cin*k] multiplies X_col and dW = dy^T X_col needs no re-layout; kernel 1
// without padding uses x itself. im2col and col2im are plain elementwise kernels into
// DeviceScratch; the products go through cuda::sgemm (cuBLAS, FP32).
//
// Numerics against the CPU: im2col, col2im (sums over j in the CPU's order) and the bias
// broadcast are exact; the GEMMs differ by float32 rounding of the summation order (cuBLAS vs
// our blocked kernel); dbias sums over time in 8 strided float partials combined in a tree
// (the CPU sums sequentially), a relative difference of order 1e-7 * sqrt(T_out).
// ---------------------------------------------------------------------------------------------
#include <string>

#include "cuda/common.cuh"
#include "cuda/gemm.h"
#include "ops/conv.h"

namespace pstal {
namespace {

// col [T_out, Cin*k]: col[t, i*k + j] = x[t + j - pad, i], 0 outside [0, T).
__global__ void im2col_kernel(float* __restrict__ col, const float* __restrict__ x, int64_t T, int64_t Cin, int64_t k,
                              int64_t pad, int64_t T_out) {
  const int64_t n = T_out * Cin * k, width = Cin * k;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    int64_t t = idx / width, r = idx - t * width;
    int64_t i = r / k, j = r - i * k;
    int64_t src = t + j - pad;
    col[idx] = (src < 0 || src >= T) ? 0.f : x[src * Cin + i];
  }
}

// dx[s, i] = sum over j (in order) of dcol[t, i*k + j], t = s - j + pad in [0, T_out).
__global__ void col2im_kernel(float* __restrict__ dx, const float* __restrict__ dcol, int64_t T, int64_t Cin, int64_t k,
                              int64_t pad, int64_t T_out) {
  const int64_t n = T * Cin, width = Cin * k;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    int64_t s = idx / Cin, i = idx - s * Cin;
    float acc = 0.f;
    for (int64_t j = 0; j < k; j++) {
      int64_t t = s - j + pad;
      if (t < 0 || t >= T_out) continue;
      acc += dcol[t * width + i * k + j];
    }
    dx[idx] = acc;
  }
}

// out[t, o] = bias[o] (the GEMM then accumulates with beta = 1).
__global__ void broadcast_rows_kernel(float* __restrict__ out, const float* __restrict__ bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x)
    out[idx] = bias[idx % cols];
}

// db[o] = sum_t dy[t, o]. Block (32, 8): x walks 32 consecutive columns (coalesced), y splits
// time 8 ways (strided); the 8 partials are summed in a fixed order, so results are deterministic.
constexpr int kBiasCols = 32, kBiasSplit = 8;
__global__ void bias_grad_kernel(float* __restrict__ db, const float* __restrict__ dy, int64_t T_out, int64_t Cout, bool add_to) {
  __shared__ float part[kBiasSplit][kBiasCols];
  const int64_t o = (int64_t)blockIdx.x * kBiasCols + threadIdx.x;
  float acc = 0.f;
  if (o < Cout)
    for (int64_t t = threadIdx.y; t < T_out; t += kBiasSplit) acc += dy[t * Cout + o];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && o < Cout) {
    float s = ((part[0][threadIdx.x] + part[1][threadIdx.x]) + (part[2][threadIdx.x] + part[3][threadIdx.x])) +
              ((part[4][threadIdx.x] + part[5][threadIdx.x]) + (part[6][threadIdx.x] + part[7][threadIdx.x]));
    db[o] = add_to ? db[o] + s : s;
  }
}

void im2col(float* col, const float* x, int64_t T, int64_t Cin, int64_t k, int64_t pad, int64_t T_out) {
  im2col_kernel<<<cuda::blocks_for(T_out * Cin * k), 256, 0, cuda::stream()>>>(col, x, T, Cin, k, pad, T_out);
  PSTAL_CUDA_LAUNCH();
}

}  // namespace

// conv1d_forward(out, x, weight, bias | null, T, Cin, Cout, k, pad)
void conv1d_forward(const Conv1dForward& op) {
  const auto& [T, Cin, Cout, k, pad, T_out, out, x, w, bias] = op;
  const bool direct = k == 1 && pad == 0;
  cuda::DeviceScratch col_scratch(direct ? 0 : (size_t)(T_out * Cin * k) * sizeof(float));
  const float* col = x;
  if (!direct) {
    im2col(col_scratch.as<float>(), x, T, Cin, k, pad, T_out);
    col = col_scratch.as<float>();
  }
  float beta = 0.f;
  if (bias) {
    broadcast_rows_kernel<<<cuda::blocks_for(T_out * Cout), 256, 0, cuda::stream()>>>(out, bias, T_out, Cout);
    PSTAL_CUDA_LAUNCH();
    beta = 1.f;
  }
  cuda::sgemm(false, true, T_out, Cout, Cin * k, 1.f, col, Cin * k, w, Cin * k, beta, out, Cout);
}

// conv1d_backward(dx | null, dweight | null, dbias | null, dy, x, weight, T, Cin, Cout, k, pad)
void conv1d_backward(const Conv1dBackward& op) {
  const auto& [T, Cin, Cout, k, pad, T_out, dx, dw, db, dy, x, w, acc_w, acc_b] = op;
  bool direct = k == 1 && pad == 0;
  cudaStream_t st = cuda::stream();
  if (db) {
    dim3 block(kBiasCols, kBiasSplit);
    bias_grad_kernel<<<(unsigned)((Cout + kBiasCols - 1) / kBiasCols), block, 0, st>>>(db, dy, T_out, Cout, acc_b);
    PSTAL_CUDA_LAUNCH();
  }
  // One scratch serves X_col (for dW) and then dX_col (for dx): the stream orders the reuse.
  cuda::DeviceScratch col_scratch(!direct && (dw || dx) ? (size_t)(T_out * Cin * k) * sizeof(float) : 0);
  if (dw) {
    if (T_out == 0) {  // an empty sum (a K = 0 GEMM is left out of the cuBLAS contract)
      if (!acc_w) PSTAL_CUDA_CHECK(cudaMemsetAsync(dw, 0, (size_t)(Cout * Cin * k) * sizeof(float), st));
    } else {
      const float* col = x;
      if (!direct) {
        im2col(col_scratch.as<float>(), x, T, Cin, k, pad, T_out);
        col = col_scratch.as<float>();
      }
      cuda::sgemm(true, false, Cout, Cin * k, T_out, 1.f, dy, Cout, col, Cin * k, acc_w ? 1.f : 0.f, dw, Cin * k);
    }
  }
  if (dx && T > 0) {
    if (direct) {
      cuda::sgemm(false, false, T, Cin, Cout, 1.f, dy, Cout, w, Cin, 0.f, dx, Cin);
    } else if (T_out == 0) {
      PSTAL_CUDA_CHECK(cudaMemsetAsync(dx, 0, (size_t)(T * Cin) * sizeof(float), st));
    } else {
      float* dcol = col_scratch.as<float>();
      cuda::sgemm(false, false, T_out, Cin * k, Cout, 1.f, dy, Cout, w, Cin * k, 0.f, dcol, Cin * k);
      // col2im: each input row gathers from the (t, j) pairs that read it, so rows are independent.
      col2im_kernel<<<cuda::blocks_for(T * Cin), 256, 0, st>>>(dx, dcol, T, Cin, k, pad, T_out);
      PSTAL_CUDA_LAUNCH();
    }
  }
}

}  // namespace pstal
