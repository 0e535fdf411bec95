// ---------------------------------------------------------------------------------------------
// norm.cu: the CUDA kernels of native/ops/norm.h, twins of native/cpu/norm.cc (the reference):
// softmax and log-softmax, LayerNorm, row L2 normalisation over the last axis of [rows, cols].
//
// One warp per row, lanes striding over the columns; row sums in double as on the CPU (in a
// different order, so they agree to double rounding), the row maximum exactly (max is
// order-independent; NaN is skipped as the CPU's `x > m ? x : m` skips it). Per-element float
// arithmetic is the CPU's, with expf from CUDA's libdevice (within 2 ulp of glibc's).
// l2norm accumulates in double as the CPU does (in practice bitwise equal).
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>

#include "cuda/common.cuh"
#include "ops/norm.h"

namespace pstal {
namespace {

constexpr int WARPS = 8;  // rows per 256-thread block

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

__global__ void softmax_forward_kernel(float* y, const float* x, int64_t rows, int64_t cols, bool log) {
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)WARPS + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * WARPS) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = -INFINITY;
    for (int64_t j = lane; j < cols; j += 32) m = xr[j] > m ? xr[j] : m;
    m = warp_max(m);
    double s = 0;
    for (int64_t j = lane; j < cols; j += 32) s += exp((double)(xr[j] - m));
    s = warp_sum(s);
    if (log) {
      float lse = m + (float)::log(s);
      for (int64_t j = lane; j < cols; j += 32) yr[j] = xr[j] - lse;
    } else {
      float inv = (float)(1.0 / s);
      for (int64_t j = lane; j < cols; j += 32) yr[j] = __fmul_rn(expf(xr[j] - m), inv);
    }
  }
}

__global__ void softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols, bool log) {
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)WARPS + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * WARPS) {
    const float* g = dy + r * cols;
    const float* yr = y + r * cols;
    float* d = dx + r * cols;
    double s = 0;
    if (log) {  // dx = dy - softmax * sum(dy)
      for (int64_t j = lane; j < cols; j += 32) s += g[j];
      float sf = (float)warp_sum(s);
      for (int64_t j = lane; j < cols; j += 32) d[j] = __fsub_rn(g[j], __fmul_rn(expf(yr[j]), sf));
    } else {  // dx = y * (dy - sum(dy * y))
      for (int64_t j = lane; j < cols; j += 32) s += (double)g[j] * yr[j];
      float sf = (float)warp_sum(s);
      for (int64_t j = lane; j < cols; j += 32) d[j] = __fmul_rn(yr[j], g[j] - sf);
    }
  }
}

}  // namespace

// softmax_forward(out, x, rows, cols, log)
void softmax_forward(const SoftmaxForward& op) {
  const auto& [rows, cols, log, y, x] = op;
  if (rows == 0) return;
  softmax_forward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(y, x, rows, cols, log);
  PSTAL_CUDA_LAUNCH();
}

// softmax_backward(dx, dy, y, rows, cols, log): y is the forward output
void softmax_backward(const SoftmaxBackward& op) {
  const auto& [rows, cols, log, dx, dy, y] = op;
  if (rows <= 0 || cols <= 0) return;
  softmax_backward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(dx, dy, y, rows, cols, log);
  PSTAL_CUDA_LAUNCH();
}

namespace {



__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* x, const float* w,
                                         const float* b, int64_t rows, int64_t cols, float eps) {
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)WARPS + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * WARPS) {
    const float* xr = x + r * cols;
    double s = 0;
    for (int64_t j = lane; j < cols; j += 32) s += xr[j];
    s = warp_sum(s);
    double m = s / cols, v = 0;
    for (int64_t j = lane; j < cols; j += 32) v += ((double)xr[j] - m) * ((double)xr[j] - m);
    v = warp_sum(v);
    float rs = (float)(1.0 / sqrt(v / cols + eps));
    float mf = (float)m;
    float* o = out + r * cols;
    for (int64_t j = lane; j < cols; j += 32) o[j] = __fadd_rn(__fmul_rn(__fmul_rn(xr[j] - mf, rs), w[j]), b[j]);
    if (lane == 0) {
      mean[r] = mf;
      rstd[r] = rs;
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
__global__ void layernorm_dx_kernel(float* dx, const float* dy, const float* x, const float* mean, const float* rstd,
                                    const float* w, int64_t rows, int64_t cols) {
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)WARPS + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * WARPS) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    float m = mean[r], rs = rstd[r];
    double sg = 0, sgx = 0;
    for (int64_t j = lane; j < cols; j += 32) {
      float xhat = (xr[j] - m) * rs;
      float g = __fmul_rn(dyr[j], w[j]);
      sg += g;
      sgx += (double)g * xhat;
    }
    sg = warp_sum(sg);
    sgx = warp_sum(sgx);
    float mg = (float)(sg / cols), mgx = (float)(sgx / cols);
    float* dxr = dx + r * cols;
    for (int64_t j = lane; j < cols; j += 32) {
      float xhat = (xr[j] - m) * rs;
      dxr[j] = rs * __fsub_rn(__fsub_rn(__fmul_rn(dyr[j], w[j]), mg), __fmul_rn(xhat, mgx));
    }
  }
}

// Stage 1: part_w[p, j] = sum over rows of chunk p of dy * xhat, part_b[p, j] = sum of dy (double).
__global__ void layernorm_dwdb_partial_kernel(double* part_w, double* part_b, const float* dy, const float* x,
                                              const float* mean, const float* rstd, int64_t rows, int64_t cols,
                                              int64_t chunks, int64_t chunk_rows) {
  int64_t n = chunks * cols;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t p = e / cols, j = e - p * cols;
    int64_t r0 = p * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    double aw = 0, ab = 0;
    for (int64_t r = r0; r < r1; r++) {
      float d = dy[r * cols + j];
      float xhat = (x[r * cols + j] - mean[r]) * rstd[r];
      aw += (double)d * xhat;
      ab += d;
    }
    part_w[e] = aw;
    part_b[e] = ab;
  }
}

// Stage 2: dw[j] = sum over p (in order) of part_w[p, j]; same for db.
// accumulate: added to dw and db (the float sums), as the CPU's.
__global__ void layernorm_dwdb_finish_kernel(float* dw, float* db, const double* part_w, const double* part_b,
                                             int64_t cols, int64_t chunks, bool accumulate) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x) {
    double a = 0, b = 0;
    for (int64_t p = 0; p < chunks; p++) a += part_w[p * cols + j], b += part_b[p * cols + j];
    dw[j] = accumulate ? dw[j] + (float)a : (float)a;
    db[j] = accumulate ? db[j] + (float)b : (float)b;
  }
}

}  // namespace

// layernorm_forward(out, mean, rstd, x, weight, bias, rows, cols, eps)
void layernorm_forward(const LayernormForward& op) {
  const auto& [rows, cols, eps, out, mean, rstd, x, w, b] = op;
  if (rows == 0) return;
  layernorm_forward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(out, mean, rstd, x, w, b,
                                                                                            rows, cols, eps);
  PSTAL_CUDA_LAUNCH();
}

// layernorm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight, rows, cols)
void layernorm_backward(const LayernormBackward& op) {
  const auto& [rows, cols, dx, dw, db, dy, x, mean, rstd, w, accumulate] = op;
  if (cols <= 0) return;
  if (rows > 0) {
    layernorm_dx_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(dx, dy, x, mean, rstd, w, rows,
                                                                                          cols);
    PSTAL_CUDA_LAUNCH();
  }
  // About 32K stage-1 threads (chunks x cols), each summing a contiguous chunk of rows.
  int64_t chunks = (32768 + cols - 1) / cols;
  if (chunks > rows) chunks = rows;
  if (chunks > 4096) chunks = 4096;
  if (chunks < 1) chunks = 1;
  int64_t chunk_rows = (rows + chunks - 1) / chunks;
  if (chunk_rows > 0) chunks = (rows + chunk_rows - 1) / chunk_rows;
  cuda::DeviceScratch part((size_t)(2 * chunks * cols) * sizeof(double));
  double* part_w = part.as<double>();
  double* part_b = part_w + chunks * cols;
  layernorm_dwdb_partial_kernel<<<cuda::blocks_for(chunks * cols), 256, 0, cuda::stream()>>>(part_w, part_b, dy, x, mean,
                                                                                           rstd, rows, cols, chunks,
                                                                                           chunk_rows);
  PSTAL_CUDA_LAUNCH();
  layernorm_dwdb_finish_kernel<<<cuda::blocks_for(cols), 256, 0, cuda::stream()>>>(dw, db, part_w, part_b, cols, chunks,
                                                                                  accumulate);
  PSTAL_CUDA_LAUNCH();
}

namespace {

// One warp per row.
__global__ void l2norm_forward_kernel(float* out, float* norm, const float* x, int64_t rows, int64_t cols, float eps) {
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)WARPS + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * WARPS) {
    const float* xr = x + r * cols;
    double s = 0;
    for (int64_t j = lane; j < cols; j += 32) s += (double)xr[j] * xr[j];
    s = warp_sum(s);
    float n = (float)sqrt(s);
    if (lane == 0) norm[r] = n;
    float inv = 1.f / (n < eps ? eps : n);  // std::max(n, eps)
    for (int64_t j = lane; j < cols; j += 32) out[r * cols + j] = __fmul_rn(xr[j], inv);
  }
}

__global__ void l2norm_backward_kernel(float* dx, const float* dy, const float* x, const float* norm, int64_t rows,
                                       int64_t cols, float eps) {
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * (int64_t)WARPS + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * WARPS) {
    const float* xr = x + r * cols;
    const float* g = dy + r * cols;
    float n = norm[r];
    if (n > eps) {  // d(x/n) = (g - xhat (xhat . g)) / n
      double dot = 0;
      for (int64_t j = lane; j < cols; j += 32) dot += (double)g[j] * xr[j];
      dot = warp_sum(dot);
      float c = (float)(dot / ((double)n * n));
      for (int64_t j = lane; j < cols; j += 32) dx[r * cols + j] = __fsub_rn(g[j], __fmul_rn(xr[j], c)) / n;
    } else {
      for (int64_t j = lane; j < cols; j += 32) dx[r * cols + j] = g[j] / eps;
    }
  }
}

}  // namespace

// l2norm_forward(out, norm, x, rows, cols, eps): out = x / max(||x||, eps) per row
void l2norm_forward(const L2normForward& op) {
  const auto& [rows, cols, eps, out, norm, x] = op;
  if (rows <= 0 || cols < 0) return;
  l2norm_forward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(out, norm, x, rows, cols, eps);
  PSTAL_CUDA_LAUNCH();
}

// l2norm_backward(dx, dy, x, norm, rows, cols, eps)
void l2norm_backward(const L2normBackward& op) {
  const auto& [rows, cols, eps, dx, dy, x, norm] = op;
  if (rows <= 0 || cols <= 0) return;
  l2norm_backward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(dx, dy, x, norm, rows, cols, eps);
  PSTAL_CUDA_LAUNCH();
}

}  // namespace pstal
