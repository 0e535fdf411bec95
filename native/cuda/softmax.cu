// ---------------------------------------------------------------------------------------------
// softmax.cu: the CUDA twin of native/cpu/softmax.cc (the readable reference): softmax and
// log-softmax over the last axis of [rows, cols], forward and backward. Same op names, argument
// order, checks and error messages as the CPU file.
//
// One warp per row, lanes striding over the columns; row sums in double as on the CPU (in a
// different order, so they agree to double rounding), the row maximum exactly (max is
// order-independent; NaN is skipped as the CPU's `x > m ? x : m` skips it). Per-element float
// arithmetic is the CPU's, with expf from CUDA's libdevice (within 2 ulp of glibc's).
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>

#include "cuda/common.cuh"

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
PSTAL_OP(softmax_forward) {
  int64_t rows = args.i64(2, "rows"), cols = args.i64(3, "cols");
  bool log = args.flag(4, "log");
  PSTAL_CHECK(args, rows >= 0 && cols >= 1, "softmax needs at least one column");
  float* y = args.buf(0, rows * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  if (rows == 0) return args.env().Undefined();
  softmax_forward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(y, x, rows, cols, log);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

// softmax_backward(dx, dy, y, rows, cols, log): y is the forward output
PSTAL_OP(softmax_backward) {
  int64_t rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  bool log = args.flag(5, "log");
  float* dx = args.buf(0, rows * cols, "dx");
  const float* dy = args.buf(1, rows * cols, "dy");
  const float* y = args.buf(2, rows * cols, "y");
  if (rows <= 0 || cols <= 0) return args.env().Undefined();
  softmax_backward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(dx, dy, y, rows, cols, log);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

}  // namespace pstal
