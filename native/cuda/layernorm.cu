// ---------------------------------------------------------------------------------------------
// layernorm.cu: the CUDA twin of native/cpu/layernorm.cc (the readable reference): LayerNorm over
// the last axis of [rows, cols]. Forward saves each row's mean and 1/std (as floats, computed in
// double exactly as the CPU does); backward gives dx, dweight and dbias. Same op names, argument
// order, checks and error messages as the CPU file.
//
// Invariants:
// - Row statistics: one warp per row, double accumulation (the CPU's precision; the order differs,
//   so results agree to double rounding before the cast to float).
// - dweight / dbias are reduced over rows in two stages with no atomics: stage 1 sums fixed row
//   chunks per column in double, stage 2 adds the chunk partials in chunk order. Deterministic.
// - Per-element float arithmetic is the CPU's, with __fmul_rn / __fadd_rn where nvcc would
//   otherwise contract into an FMA (the CPU build has none).
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
__global__ void layernorm_dwdb_finish_kernel(float* dw, float* db, const double* part_w, const double* part_b,
                                             int64_t cols, int64_t chunks) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x) {
    double a = 0, b = 0;
    for (int64_t p = 0; p < chunks; p++) a += part_w[p * cols + j], b += part_b[p * cols + j];
    dw[j] = (float)a;
    db[j] = (float)b;
  }
}

}  // namespace

// layernorm_forward(out, mean, rstd, x, weight, bias, rows, cols, eps)
PSTAL_OP(layernorm_forward) {
  int64_t rows = args.i64(6, "rows"), cols = args.i64(7, "cols");
  float eps = (float)args.f64(8, "eps");
  PSTAL_CHECK(args, rows >= 0 && cols >= 1, "layernorm needs at least one column");
  float* out = args.buf(0, rows * cols, "out");
  float* mean = args.buf(1, rows, "mean");
  float* rstd = args.buf(2, rows, "rstd");
  const float* x = args.buf(3, rows * cols, "x");
  const float* w = args.buf(4, cols, "weight");
  const float* b = args.buf(5, cols, "bias");
  if (rows == 0) return args.env().Undefined();
  layernorm_forward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(out, mean, rstd, x, w, b,
                                                                                            rows, cols, eps);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

// layernorm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight, rows, cols)
PSTAL_OP(layernorm_backward) {
  int64_t rows = args.i64(8, "rows"), cols = args.i64(9, "cols");
  float* dx = args.buf(0, rows * cols, "dx");
  float* dw = args.buf(1, cols, "dweight");
  float* db = args.buf(2, cols, "dbias");
  const float* dy = args.buf(3, rows * cols, "dy");
  const float* x = args.buf(4, rows * cols, "x");
  const float* mean = args.buf(5, rows, "mean");
  const float* rstd = args.buf(6, rows, "rstd");
  const float* w = args.buf(7, cols, "weight");
  if (cols <= 0) return args.env().Undefined();
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
  layernorm_dwdb_finish_kernel<<<cuda::blocks_for(cols), 256, 0, cuda::stream()>>>(dw, db, part_w, part_b, cols, chunks);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

}  // namespace pstal
