// ---------------------------------------------------------------------------------------------
// reduce.cu: the CUDA twin of native/cpu/reduce.cc (the readable reference): sum / mean / max over
// one axis, and the mean of the top-k values along time, each with its backward. Same op names,
// argument order, checks and error messages as the CPU file.
//
// A tensor is viewed as [outer, len, inner] around the reduced axis; the output is [outer, inner].
//
// Invariants:
// - max keeps the CPU's rule exactly: the running maximum starts at l = 0 and moves only to a
//   strictly greater value, so ties go to the first index, NaN after l = 0 is never taken and a
//   NaN at l = 0 is the result (argmax 0). The parallel path reproduces this by skipping NaN
//   values, combining (value, index) pairs with "greater, or equal and earlier", and checking l = 0.
// - sum and mean accumulate in double as the CPU does. Short axes (len <= 64) use the CPU's exact
//   serial order (bitwise equal); long axes split the sum across threads and, when there are few
//   outputs, across blocks (partials combined in a fixed order by a second kernel: deterministic,
//   no atomics). The double sums then differ only in double rounding before the cast to float.
// - topk_mean selects exactly the CPU's elements and order: element t of a column has rank
//   #{u : x_u > x_t} + #{u < t : x_u == x_t} (the CPU's comparator), it is chosen iff rank < k, and
//   index[rank] = t. Ranks are counted per column through shared-memory tiles (O(T^2 / threads),
//   fine for T up to tens of thousands). The mean sums the chosen values in double.
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>

#include "cuda/common.cuh"
#include "ops/reduce.h"

namespace pstal {
namespace {


constexpr int64_t MAX_GRID = 65535 * 8;

inline unsigned grid_for_blocks(int64_t blocks) {
  return (unsigned)(blocks < 1 ? 1 : (blocks < MAX_GRID ? blocks : MAX_GRID));
}

// ---- reduce: serial path (len <= SERIAL_LEN), one thread per output, the CPU's loop ---------

constexpr int64_t SERIAL_LEN = 64;

template <int KIND>
__global__ void reduce_serial_kernel(float* out, float* arg, const float* x, int64_t xs, int64_t outer, int64_t len,
                                     int64_t inner, double scale) {
  int64_t n = outer * inner;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t o = e / inner, j = e - o * inner;
    const float* xo = x + o * xs + j;
    if (KIND == MAX) {
      float best = xo[0], bi = 0.f;
      for (int64_t l = 1; l < len; l++)
        if (xo[l * inner] > best) best = xo[l * inner], bi = (float)l;
      out[e] = best;
      arg[e] = bi;
    } else {
      double acc = 0;
      for (int64_t l = 0; l < len; l++) acc += xo[l * inner];
      out[e] = (float)(acc * scale);
    }
  }
}

// ---- reduce: parallel path ------------------------------------------------------------------
// Block (TX, TY): TX consecutive j of one o (TX = 32 when inner >= 32, else 1), TY threads split
// one chunk of the axis. Each block handles (o, tile of j, chunk); with one chunk it writes the
// result, otherwise a partial that reduce_finish_kernel combines in chunk order.

struct MaxState {
  float v;
  int64_t i;  // -1: empty
};

__device__ __forceinline__ void max_combine(MaxState& a, const MaxState& b) {
  if (b.i < 0) return;
  if (a.i < 0 || b.v > a.v || (b.v == a.v && b.i < a.i)) a = b;
}

// The CPU's result from the combined non-NaN maximum: a NaN at l = 0 wins (nothing is > NaN).
__device__ __forceinline__ void max_write(float* out, float* arg, int64_t e, float x0, const MaxState& s) {
  if (x0 != x0) {
    out[e] = x0;
    arg[e] = 0.f;
  } else {
    out[e] = s.v;
    arg[e] = (float)s.i;
  }
}

template <int KIND>
__global__ void reduce_tiled_kernel(float* out, float* arg, double* psum, MaxState* pmax, const float* x, int64_t xs,
                                    int64_t outer, int64_t len, int64_t inner, int64_t tiles, int64_t chunks,
                                    int64_t chunk_len, double scale) {
  __shared__ double ssum[256];
  __shared__ MaxState smax[256];
  const int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y, tid = ty * TX + tx;
  const int64_t total = outer * tiles * chunks;
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    int64_t ch = b % chunks, rest = b / chunks, tile = rest % tiles, o = rest / tiles;
    int64_t j = tile * TX + tx;
    int64_t l0 = ch * chunk_len, l1 = l0 + chunk_len < len ? l0 + chunk_len : len;
    const float* xo = x + o * xs + j;
    if (KIND == MAX) {
      MaxState s{0.f, -1};
      if (j < inner)
        for (int64_t l = l0 + ty; l < l1; l += TY) {
          float v = xo[l * inner];
          if (v == v) max_combine(s, MaxState{v, l});
        }
      smax[tid] = s;
    } else {
      double s = 0;
      if (j < inner)
        for (int64_t l = l0 + ty; l < l1; l += TY) s += xo[l * inner];
      ssum[tid] = s;
    }
    __syncthreads();
    for (int h = TY / 2; h > 0; h >>= 1) {
      if (ty < h) {
        if (KIND == MAX) {
          MaxState s = smax[tid];
          max_combine(s, smax[tid + h * TX]);
          smax[tid] = s;
        } else {
          ssum[tid] += ssum[tid + h * TX];
        }
      }
      __syncthreads();
    }
    if (ty == 0 && j < inner) {
      int64_t e = o * inner + j;
      if (chunks == 1) {
        if (KIND == MAX)
          max_write(out, arg, e, xo[0], smax[tx]);
        else
          out[e] = (float)(ssum[tx] * scale);
      } else {
        if (KIND == MAX)
          pmax[e * chunks + ch] = smax[tx];
        else
          psum[e * chunks + ch] = ssum[tx];
      }
    }
    __syncthreads();  // shared memory is reused by the next block index
  }
}

template <int KIND>
__global__ void reduce_finish_kernel(float* out, float* arg, const double* psum, const MaxState* pmax, const float* x,
                                     int64_t xs, int64_t outer, int64_t len, int64_t inner, int64_t chunks,
                                     double scale) {
  int64_t n = outer * inner;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    if (KIND == MAX) {
      MaxState s{0.f, -1};
      for (int64_t c = 0; c < chunks; c++) max_combine(s, pmax[e * chunks + c]);
      int64_t o = e / inner, j = e - o * inner;
      max_write(out, arg, e, x[o * xs + j], s);
    } else {
      double s = 0;
      for (int64_t c = 0; c < chunks; c++) s += psum[e * chunks + c];
      out[e] = (float)(s * scale);
    }
  }
}

template <int KIND>
void reduce_launch(float* out, float* arg, const float* x, int64_t xs, int64_t outer, int64_t len, int64_t inner,
                   double scale) {
  int64_t n = outer * inner;
  if (len <= SERIAL_LEN) {
    reduce_serial_kernel<KIND><<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(out, arg, x, xs, outer, len, inner, scale);
    PSTAL_CUDA_LAUNCH();
    return;
  }
  const int TX = inner >= 32 ? 32 : 1, TY = 256 / TX;
  int64_t tiles = (inner + TX - 1) / TX, groups = outer * tiles;
  // Few output groups and a long axis: split the axis into chunks so that enough blocks run.
  int64_t chunks = 1;
  if (groups < 1024) {
    int64_t by_len = (len + TY * 32 - 1) / (TY * 32);
    int64_t by_groups = (2048 + groups - 1) / groups;
    chunks = by_len < by_groups ? by_len : by_groups;
    if (chunks < 1) chunks = 1;
  }
  int64_t chunk_len = (len + chunks - 1) / chunks;
  chunks = (len + chunk_len - 1) / chunk_len;
  cuda::DeviceScratch partial(chunks > 1 ? (size_t)(n * chunks) * (KIND == MAX ? sizeof(MaxState) : sizeof(double)) : 0);
  double* psum = KIND == MAX ? nullptr : partial.as<double>();
  MaxState* pmax = KIND == MAX ? partial.as<MaxState>() : nullptr;
  reduce_tiled_kernel<KIND><<<grid_for_blocks(groups * chunks), dim3(TX, TY), 0, cuda::stream()>>>(
      out, arg, psum, pmax, x, xs, outer, len, inner, tiles, chunks, chunk_len, scale);
  PSTAL_CUDA_LAUNCH();
  if (chunks > 1) {
    reduce_finish_kernel<KIND><<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(out, arg, psum, pmax, x, xs, outer, len,
                                                                               inner, chunks, scale);
    PSTAL_CUDA_LAUNCH();
  }
}

// ---- reduce backward ------------------------------------------------------------------------

template <int KIND>
__global__ void reduce_backward_kernel(float* dx, const float* dy, const float* arg, int64_t outer, int64_t len,
                                       int64_t inner, float scale) {
  int64_t n = outer * len * inner;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t j = e % inner, ol = e / inner, l = ol % len, o = ol / len;
    int64_t y = o * inner + j;
    if (KIND == MAX)
      dx[e] = (int64_t)arg[y] == l ? dy[y] : 0.f;
    else
      dx[e] = __fmul_rn(dy[y], scale);
  }
}

// ---- topk_mean ------------------------------------------------------------------------------

constexpr int TOPK_THREADS = 256;

// One block per (column, tile of TOPK_THREADS rows): each thread counts its element's rank.
__global__ void topk_rank_kernel(float* index, const float* x, int64_t T, int64_t C, int64_t k, int64_t tiles) {
  __shared__ float sx[TOPK_THREADS];
  const int64_t total = C * tiles;
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    int64_t c = b / tiles, t = (b % tiles) * TOPK_THREADS + threadIdx.x;
    float xt = t < T ? x[t * C + c] : 0.f;
    int64_t rank = 0;
    for (int64_t u0 = 0; u0 < T; u0 += TOPK_THREADS) {
      __syncthreads();
      if (u0 + threadIdx.x < T) sx[threadIdx.x] = x[(u0 + threadIdx.x) * C + c];
      __syncthreads();
      int m = T - u0 < TOPK_THREADS ? (int)(T - u0) : TOPK_THREADS;
      int before = t - u0 < 0 ? 0 : (t - u0 > m ? m : (int)(t - u0));  // tile rows u < t
      int cnt = 0;
      for (int q = 0; q < m; q++) {
        float xu = sx[q];
        cnt += (xu > xt) | ((xu == xt) & (q < before));
      }
      rank += cnt;
    }
    if (t < T && rank < k) index[rank * C + c] = (float)t;
    __syncthreads();
  }
}

// out[c] = (sum over i < k of x[index[i], c], in double) / k; one block per column.
__global__ void topk_sum_kernel(float* out, const float* index, const float* x, int64_t T, int64_t C, int64_t k) {
  __shared__ double part[TOPK_THREADS / 32];
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) {
      float fi = index[i * C + c];
      int64_t t = (int64_t)fi;
      if (fi >= 0.f && t < T) s += x[t * C + c];  // always true unless x has NaN (ranks then collide)
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      double tot = 0;
      for (int w = 0; w < TOPK_THREADS / 32; w++) tot += part[w];
      out[c] = (float)(tot / (double)k);
    }
    __syncthreads();
  }
}

__global__ void topk_backward_kernel(float* dx, const float* dy, const float* index, int64_t T, int64_t C, int64_t k) {
  int64_t n = k * C;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t c = e % C;
    float fi = index[e];
    int64_t t = (int64_t)fi;
    // Indices of one column are distinct (forward ranks), so this add never collides; were one
    // repeated, every addend is the same dy[c] / k and the sum is order-independent anyway.
    if (fi >= 0.f && t < T) atomicAdd(dx + t * C + c, dy[c] / (float)k);
  }
}

}  // namespace

// reduce_forward(kind, out, argmax, x, outer, len, inner[, axis_len, start]): argmax (a buffer of
// [outer, inner] indices stored as floats) is written for MAX only and may be null otherwise.
void reduce_forward(const ReduceForward& op) {
  const auto& [kind, outer, len, inner, out, arg, x, xs] = op;
  if (outer * inner == 0) return;
  double scale = kind == MEAN ? 1.0 / (double)len : 1.0;
  if (kind == MAX)
    reduce_launch<MAX>(out, arg, x, xs, outer, len, inner, scale);
  else
    reduce_launch<SUM>(out, arg, x, xs, outer, len, inner, scale);
}

// reduce_backward(kind, dx, dy, argmax, outer, len, inner)
void reduce_backward(const ReduceBackward& op) {
  const auto& [kind, outer, len, inner, dx, dy, arg] = op;
  float scale = kind == MEAN ? 1.f / (float)len : 1.f;
  if (outer <= 0 || len <= 0 || inner <= 0) return;
  int64_t n = outer * len * inner;
  if (kind == MAX)
    reduce_backward_kernel<MAX><<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(dx, dy, arg, outer, len, inner, scale);
  else
    reduce_backward_kernel<SUM><<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(dx, dy, arg, outer, len, inner, scale);
  PSTAL_CUDA_LAUNCH();
}

// topk_mean_forward(out, index, x, T, C, k): out[c] = mean of the k largest x[:, c]; index [k, C]
// keeps the rows chosen (as floats) for the backward. Ties keep the earlier row.
void topk_mean_forward(const TopkMeanForward& op) {
  const auto& [T, C, k, out, index, x] = op;
  if (C == 0) return;
  int64_t tiles = (T + TOPK_THREADS - 1) / TOPK_THREADS;
  topk_rank_kernel<<<grid_for_blocks(C * tiles), TOPK_THREADS, 0, cuda::stream()>>>(index, x, T, C, k, tiles);
  PSTAL_CUDA_LAUNCH();
  topk_sum_kernel<<<grid_for_blocks(C), TOPK_THREADS, 0, cuda::stream()>>>(out, index, x, T, C, k);
  PSTAL_CUDA_LAUNCH();
}

// topk_mean_backward(dx, dy, index, T, C, k)
void topk_mean_backward(const TopkMeanBackward& op) {
  const auto& [T, C, k, dx, dy, index] = op;
  if (C <= 0) return;
  PSTAL_CUDA_CHECK(cudaMemsetAsync(dx, 0, (size_t)(T * C) * sizeof(float), cuda::stream()));
  topk_backward_kernel<<<cuda::blocks_for(k * C), 256, 0, cuda::stream()>>>(dx, dy, index, T, C, k);
  PSTAL_CUDA_LAUNCH();
}

}  // namespace pstal
