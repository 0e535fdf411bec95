// ---------------------------------------------------------------------------------------------
// shape.cu: the CUDA twin of native/cpu/shape.cc (the readable reference): row gather and its
// scatter-add backward, strided block copies (concat / slice), 2-D transpose. Arguments are read
// and checked once, in native/ops/shape.cc.
//
// Invariants:
// - gather_rows_backward is deterministic and bitwise equal to the CPU: the host (which holds the
//   index list anyway) builds, for every row of dx, the positions that gather from it in
//   increasing order, and one thread per dx element sums them in that order, in float, as the
//   CPU's `dx[index[i]] += dy[i]` loop does. No atomics.
// - Ops that upload a host array synchronise the stream before returning (common.cuh's upload
//   contract: the host array must outlive the copy).
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "ops/shape.h"

namespace pstal {
namespace {



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

}  // namespace

// gather_rows_forward(out, x, index Int32Array, rows_x, cols): out[i] = x[index[i]]
void gather_rows_forward(const GatherRowsForward& op) {
  const auto& [n_idx, rows, cols, idx, out, x] = op;
  if (n_idx == 0 || cols <= 0) return;
  cuda::DeviceScratch d_idx = cuda::upload(idx, n_idx);
  gather_rows_kernel<<<cuda::blocks_for(n_idx * cols), 256, 0, cuda::stream()>>>(out, x, d_idx.as<int32_t>(), n_idx, cols);
  PSTAL_CUDA_LAUNCH();
  PSTAL_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));  // the index array must outlive its upload
}

// gather_rows_backward(dx, dy, index, rows_x, cols): dx = 0; dx[index[i]] += dy[i]
void gather_rows_backward(const GatherRowsBackward& op) {
  const auto& [n_idx, rows, cols, idx, dx, dy] = op;
  if (rows <= 0 || cols <= 0) return;
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
}

// block_copy(dst, src, outer, len, dst_stride, dst_off, src_stride, src_off, accumulate):
//   for o < outer, j < len: dst[o*dst_stride + dst_off + j] (+)= src[o*src_stride + src_off + j]
void block_copy(const BlockCopy& op) {
  const auto& [outer, len, ds, doff, ss, soff, acc, dst, src] = op;
  block_copy_kernel<<<cuda::blocks_for(outer * len), 256, 0, cuda::stream()>>>(dst, src, outer, len, ds, doff, ss, soff, acc);
  PSTAL_CUDA_LAUNCH();
}

// transpose2d(out, x, rows, cols): out [cols, rows]
void transpose2d(const Transpose2d& op) {
  const auto& [rows, cols, out, x] = op;
  if (rows <= 0 || cols <= 0) return;
  int64_t tiles_c = (cols + 31) / 32, ntiles = ((rows + 31) / 32) * tiles_c;
  unsigned grid = (unsigned)(ntiles < 65535 * 8 ? ntiles : 65535 * 8);
  transpose_kernel<<<grid, dim3(32, 8), 0, cuda::stream()>>>(out, x, rows, cols, tiles_c, ntiles);
  PSTAL_CUDA_LAUNCH();
}

}  // namespace pstal
