// ---------------------------------------------------------------------------------------------
// index.cu: the CUDA twin of native/cpu/index.cc (the readable reference): row gather and its
// scatter-add backward, strided block copies (concat / slice), 2-D transpose, and row L2
// normalisation. Same op names, argument order, checks and error messages as the CPU file.
//
// Invariants:
// - gather_rows_backward is deterministic and bitwise equal to the CPU: the host (which holds the
//   index list anyway) builds, for every row of dx, the positions that gather from it in
//   increasing order, and one thread per dx element sums them in that order, in float, as the
//   CPU's `dx[index[i]] += dy[i]` loop does. No atomics.
// - Ops that upload a host array synchronise the stream before returning (common.cuh's upload
//   contract: the host array must outlive the copy).
// - l2norm accumulates in double as the CPU does (in a different order, so the float results
//   agree to rounding of the double sum: in practice bitwise).
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>
#include <vector>

#include "cuda/common.cuh"

namespace pstal {
namespace {

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr int WARPS = 8;  // rows per 256-thread block in the row kernels

__global__ void gather_rows_kernel(float* out, const float* x, const int32_t* idx, int64_t n_idx, int64_t cols) {
  int64_t n = n_idx * cols;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = e / cols, j = e - i * cols;
    out[e] = x[(int64_t)idx[i] * cols + j];
  }
}

// dx[r, j] = sum over p in [start[r], start[r + 1]) of dy[pos[p], j], p increasing.
__global__ void scatter_rows_kernel(float* dx, const float* dy, const int64_t* start, const int32_t* pos, int64_t rows,
                                    int64_t cols) {
  int64_t n = rows * cols;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = e / cols, j = e - r * cols;
    float acc = 0.f;
    for (int64_t p = start[r]; p < start[r + 1]; p++) acc = __fadd_rn(acc, dy[(int64_t)pos[p] * cols + j]);
    dx[e] = acc;
  }
}

__global__ void block_copy_kernel(float* dst, const float* src, int64_t outer, int64_t len, int64_t ds, int64_t doff,
                                  int64_t ss, int64_t soff, bool acc) {
  int64_t n = outer * len;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t o = e / len, j = e - o * len;
    float v = src[o * ss + soff + j];
    float* d = dst + o * ds + doff + j;
    *d = acc ? __fadd_rn(*d, v) : v;
  }
}

// 32x32 tiles through shared memory (padded against bank conflicts); blockDim (32, 8).
__global__ void transpose_kernel(float* out, const float* x, int64_t rows, int64_t cols, int64_t tiles_c, int64_t ntiles) {
  __shared__ float tile[32][33];
  for (int64_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    int64_t i0 = (t / tiles_c) * 32, j0 = (t % tiles_c) * 32;
    for (int k = threadIdx.y; k < 32; k += 8) {
      int64_t i = i0 + k, j = j0 + threadIdx.x;
      if (i < rows && j < cols) tile[k][threadIdx.x] = x[i * cols + j];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += 8) {
      int64_t j = j0 + k, i = i0 + threadIdx.x;
      if (j < cols && i < rows) out[j * rows + i] = tile[threadIdx.x][k];
    }
    __syncthreads();
  }
}

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

// gather_rows_forward(out, x, index Int32Array, rows_x, cols): out[i] = x[index[i]]
PSTAL_OP(gather_rows_forward) {
  int64_t n_idx, rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  const int32_t* idx = args.i32(2, "index", &n_idx);
  float* out = args.buf(0, n_idx * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  for (int64_t i = 0; i < n_idx; i++)
    PSTAL_CHECK(args, idx[i] >= 0 && idx[i] < rows,
                "index " + std::to_string(idx[i]) + " at position " + std::to_string(i) + " is out of range for " +
                    std::to_string(rows) + " rows");
  if (n_idx == 0 || cols <= 0) return args.env().Undefined();
  cuda::DeviceScratch d_idx = cuda::upload(idx, n_idx);
  gather_rows_kernel<<<cuda::blocks_for(n_idx * cols), 256, 0, cuda::stream()>>>(out, x, d_idx.as<int32_t>(), n_idx, cols);
  PSTAL_CUDA_LAUNCH();
  PSTAL_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));  // the index array must outlive its upload
  return args.env().Undefined();
}

// gather_rows_backward(dx, dy, index, rows_x, cols): dx = 0; dx[index[i]] += dy[i]
PSTAL_OP(gather_rows_backward) {
  int64_t n_idx, rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  const int32_t* idx = args.i32(2, "index", &n_idx);
  float* dx = args.buf(0, rows * cols, "dx");
  const float* dy = args.buf(1, n_idx * cols, "dy");
  for (int64_t i = 0; i < n_idx; i++)
    PSTAL_CHECK(args, idx[i] >= 0 && idx[i] < rows, "index " + std::to_string(idx[i]) + " out of range");
  if (rows <= 0 || cols <= 0) return args.env().Undefined();
  // Counting sort of positions by row: start[r] .. start[r + 1] lists the i with index[i] == r, in order.
  std::vector<int64_t> start((size_t)rows + 1, 0);
  for (int64_t i = 0; i < n_idx; i++) start[(size_t)idx[i] + 1]++;
  for (int64_t r = 0; r < rows; r++) start[(size_t)r + 1] += start[(size_t)r];
  std::vector<int32_t> pos((size_t)n_idx);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n_idx; i++) pos[(size_t)fill[(size_t)idx[i]]++] = (int32_t)i;
  }
  cuda::DeviceScratch d_start = cuda::upload(start.data(), rows + 1);
  cuda::DeviceScratch d_pos = cuda::upload(pos.data(), n_idx);
  scatter_rows_kernel<<<cuda::blocks_for(rows * cols), 256, 0, cuda::stream()>>>(dx, dy, d_start.as<int64_t>(),
                                                                                 d_pos.as<int32_t>(), rows, cols);
  PSTAL_CUDA_LAUNCH();
  PSTAL_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));  // start and pos must outlive their upload
  return args.env().Undefined();
}

// block_copy(dst, src, outer, len, dst_stride, dst_off, src_stride, src_off, accumulate):
//   for o < outer, j < len: dst[o*dst_stride + dst_off + j] (+)= src[o*src_stride + src_off + j]
PSTAL_OP(block_copy) {
  int64_t outer = args.i64(2, "outer"), len = args.i64(3, "len"), ds = args.i64(4, "dst_stride"), doff = args.i64(5, "dst_off"),
          ss = args.i64(6, "src_stride"), soff = args.i64(7, "src_off");
  bool acc = args.flag(8, "accumulate");
  PSTAL_CHECK(args, outer >= 0 && len >= 0 && ds >= 0 && doff >= 0 && ss >= 0 && soff >= 0, "negative block geometry");
  if (outer == 0 || len == 0) return args.env().Undefined();
  float* dst = args.buf(0, (outer - 1) * ds + doff + len, "dst");
  const float* src = args.buf(1, (outer - 1) * ss + soff + len, "src");
  block_copy_kernel<<<cuda::blocks_for(outer * len), 256, 0, cuda::stream()>>>(dst, src, outer, len, ds, doff, ss, soff, acc);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

// transpose2d(out, x, rows, cols): out [cols, rows]
PSTAL_OP(transpose2d) {
  int64_t rows = args.i64(2, "rows"), cols = args.i64(3, "cols");
  float* out = args.buf(0, rows * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  if (rows <= 0 || cols <= 0) return args.env().Undefined();
  int64_t tiles_c = (cols + 31) / 32, ntiles = ((rows + 31) / 32) * tiles_c;
  unsigned grid = (unsigned)(ntiles < 65535 * 8 ? ntiles : 65535 * 8);
  transpose_kernel<<<grid, dim3(32, 8), 0, cuda::stream()>>>(out, x, rows, cols, tiles_c, ntiles);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

// l2norm_forward(out, norm, x, rows, cols, eps): out = x / max(||x||, eps) per row
PSTAL_OP(l2norm_forward) {
  int64_t rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  float eps = (float)args.f64(5, "eps");
  float* out = args.buf(0, rows * cols, "out");
  float* norm = args.buf(1, rows, "norm");
  const float* x = args.buf(2, rows * cols, "x");
  if (rows <= 0 || cols < 0) return args.env().Undefined();
  l2norm_forward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(out, norm, x, rows, cols, eps);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

// l2norm_backward(dx, dy, x, norm, rows, cols, eps)
PSTAL_OP(l2norm_backward) {
  int64_t rows = args.i64(4, "rows"), cols = args.i64(5, "cols");
  float eps = (float)args.f64(6, "eps");
  float* dx = args.buf(0, rows * cols, "dx");
  const float* dy = args.buf(1, rows * cols, "dy");
  const float* x = args.buf(2, rows * cols, "x");
  const float* norm = args.buf(3, rows, "norm");
  if (rows <= 0 || cols <= 0) return args.env().Undefined();
  l2norm_backward_kernel<<<cuda::blocks_for(rows, WARPS), 32 * WARPS, 0, cuda::stream()>>>(dx, dy, x, norm, rows, cols, eps);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

}  // namespace pstal
