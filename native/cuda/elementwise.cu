// ---------------------------------------------------------------------------------------------
// elementwise.cu: the CUDA kernels of native/ops/elementwise.h, twins of native/cpu/elementwise.cc
// (the readable reference): broadcasting binary arithmetic, sum_to, unary functions with their
// derivatives, affine, axpy and dropout. Arguments are read and checked once, in ops/elementwise.cc.
//
// Invariants:
// - Every kernel computes each output with the same float operations in the same order as the CPU
//   loop. Products followed by sums use __fmul_rn / __fadd_rn so nvcc does not contract them into
//   an FMA (the CPU build targets x86-64 without FMA), which keeps affine, axpy, binary and
//   dropout bitwise equal to the CPU. The unary functions use CUDA's erff/expf/logf/tanhf, which
//   differ from glibc's by at most 2 ulp.
// - sum_to reproduces the CPU's accumulation order exactly (one thread per output walks its inputs
//   in increasing index order), so it is deterministic and bitwise equal to the CPU.
// - dropout evaluates the counter-based RNG of common/rng.h (host and device functions) per
//   element on the device, so the CPU and CUDA
//   masks are identical for the same seed.
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>
#include <vector>

#include "common/rng.h"
#include "cuda/common.cuh"
#include "ops/elementwise.h"

// The unary functions, in kind order (lib/ops/elementwise.ts's UNARY; native/cpu/elementwise.cc's
// PSTAL_UNARY_CPU is the reference): name, f(x), and f'(x) from the input x and the output y = f(x).
#define PSTAL_UNARY_CUDA(X)                                                                           \
  X(relu, x > 0.f ? x : 0.f, x > 0.f ? 1.f : 0.f)                                                     \
  X(gelu, __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.f, erff(__fmul_rn(x, 0.70710678118654752f)))), gelu_df(x)) \
  X(sigmoid, __fdiv_rn(1.f, __fadd_rn(1.f, expf(-x))), __fmul_rn(y, __fsub_rn(1.f, y)))               \
  X(exp, expf(x), y)                                                                                  \
  X(log, logf(x), __fdiv_rn(1.f, x))                                                                  \
  X(tanh, tanhf(x), __fsub_rn(1.f, __fmul_rn(y, y)))                                                  \
  X(neg, -x, -1.f)                                                                                    \
  X(sqrt, sqrtf(x), __fdiv_rn(0.5f, y))                                                               \
  X(abs, fabsf(x), x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f))

namespace pstal {
namespace {

// ---- binary ---------------------------------------------------------------------------------

template <int OP>
__device__ __forceinline__ float apply(float a, float b) {
  if (OP == ADD) return __fadd_rn(a, b);
  if (OP == SUB) return __fsub_rn(a, b);
  if (OP == MUL) return __fmul_rn(a, b);
  if (OP == DIV) return __fdiv_rn(a, b);
  if (OP == MAXIMUM) return a > b ? a : b;
  return a < b ? a : b;
}

// Output shape and operand strides (in output coordinates), right-aligned in the arrays: axis d of
// nd lives at MAX_DIMS - nd + d, so the unrolled decode loops index them with constants (kept in
// registers, not local memory). I is the index type (32-bit when every offset fits, which avoids
// 64-bit division in the coordinate decode).
template <typename I>
struct Broadcast {
  int nd;
  I shape[MAX_DIMS], sa[MAX_DIMS], sb[MAX_DIMS];
};

template <typename I>
Broadcast<I> make_broadcast(const std::vector<int64_t>& shape, const std::vector<int64_t>& sa,
                            const std::vector<int64_t>& sb) {
  Broadcast<I> bc{};
  bc.nd = (int)shape.size();
  for (int d = 0; d < bc.nd; d++) {
    int k = MAX_DIMS - bc.nd + d;
    bc.shape[k] = (I)shape[d], bc.sa[k] = (I)sa[d], bc.sb[k] = (I)sb[d];
  }
  return bc;
}

template <int OP>
__global__ void binary_contig_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = apply<OP>(a[i], b[i]);
}

template <int OP, typename I>
__global__ void binary_strided_kernel(float* out, const float* a, const float* b, Broadcast<I> bc, I n) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
    I rem = i, oa = 0, ob = 0;
#pragma unroll
    for (int k = MAX_DIMS - 1; k >= 0; k--) {
      if (k < MAX_DIMS - bc.nd) break;
      I c = rem % bc.shape[k];
      rem /= bc.shape[k];
      oa += c * bc.sa[k];
      ob += c * bc.sb[k];
    }
    out[i] = apply<OP>(a[oa], b[ob]);
  }
}

template <int OP>
void binary_launch(float* out, const float* a, const float* b, const std::vector<int64_t>& shape,
                   const std::vector<int64_t>& sa, const std::vector<int64_t>& sb, int64_t n, int64_t span_a,
                   int64_t span_b) {
  // Contiguous operands (the CPU's fast path): strides equal the output's own.
  bool a_contig = true, b_contig = true;
  int64_t stride = 1;
  for (int d = (int)shape.size() - 1; d >= 0; d--) {
    if (shape[d] != 1) {
      if (sa[d] != stride) a_contig = false;
      if (sb[d] != stride) b_contig = false;
    }
    stride *= shape[d];
  }
  unsigned grid = cuda::blocks_for(n);
  if (a_contig && b_contig) {
    binary_contig_kernel<OP><<<grid, 256, 0, cuda::stream()>>>(out, a, b, n);
    PSTAL_CUDA_LAUNCH();
    return;
  }
  const int64_t lim = (int64_t)1 << 30;
  if (n < lim && span_a < lim && span_b < lim)
    binary_strided_kernel<OP, uint32_t><<<grid, 256, 0, cuda::stream()>>>(out, a, b, make_broadcast<uint32_t>(shape, sa, sb),
                                                                          (uint32_t)n);
  else
    binary_strided_kernel<OP, int64_t><<<grid, 256, 0, cuda::stream()>>>(out, a, b, make_broadcast<int64_t>(shape, sa, sb), n);
  PSTAL_CUDA_LAUNCH();
}

// ---- sum_to ---------------------------------------------------------------------------------
// The CPU walks the rows of x (its last axis is a row) in order and adds each into the output.
// Here one thread owns one output position (a tuple of kept coordinates) and walks the summed
// coordinates in row-major order, which visits the same inputs in the same order.
//   rows mode (last out stride 1): out[o + j] += x[row, j], in float, over rows.
//   sums mode (otherwise):         out[o] += (float)(double sum of x[row, :]), over rows.

struct SumToPlan {
  int nk, nr;                                            // kept and summed axes (size-1 axes dropped)
  int64_t kshape[MAX_DIMS], kx[MAX_DIMS], ko[MAX_DIMS];  // kept: extent, x stride, out stride
  int64_t rshape[MAX_DIMS], rx[MAX_DIMS];                // summed: extent, x stride
  int64_t K, R;                                          // products of kshape and rshape
  int64_t inner;                                         // sums mode: the row length summed in double
  bool rows_mode;
};

constexpr int SUM_TO_BATCH = 8;

__global__ void sum_to_kernel(float* out, const float* x, SumToPlan st) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < st.K; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t rem = e, xo = 0, oo = 0;
#pragma unroll
    for (int d = MAX_DIMS - 1; d >= 0; d--) {
      if (d >= st.nk) continue;
      int64_t c = rem % st.kshape[d];
      rem /= st.kshape[d];
      xo += c * st.kx[d];
      oo += c * st.ko[d];
    }
    // Odometer over the summed axes, last axis fastest (increasing x offset). The loops are
    // unrolled so that coord[] indices are constants (registers, not local memory).
    int64_t coord[MAX_DIMS];
#pragma unroll
    for (int d = 0; d < MAX_DIMS; d++) coord[d] = 0;
    int64_t xr = xo;
    float acc = 0.f;
    // Batches of SUM_TO_BATCH inputs: their loads are issued together (independent of acc), then
    // added in order, so a thread has several loads in flight instead of one.
    for (int64_t q0 = 0; q0 < st.R; q0 += SUM_TO_BATCH) {
      float v[SUM_TO_BATCH];
#pragma unroll
      for (int u = 0; u < SUM_TO_BATCH; u++) {
        v[u] = 0.f;
        if (q0 + u >= st.R) continue;
        if (st.rows_mode) {
          v[u] = x[xr];
        } else {
          double s = 0;
          for (int64_t j = 0; j < st.inner; j++) s += x[xr + j];
          v[u] = (float)s;
        }
#pragma unroll
        for (int d = MAX_DIMS - 1; d >= 0; d--) {
          if (d >= st.nr) continue;
          xr += st.rx[d];
          if (++coord[d] < st.rshape[d]) break;
          xr -= coord[d] * st.rx[d];
          coord[d] = 0;
        }
      }
#pragma unroll
      for (int u = 0; u < SUM_TO_BATCH; u++)
        if (q0 + u < st.R) acc = __fadd_rn(acc, v[u]);
    }
    out[oo] = acc;
  }
}

// ---- unary ----------------------------------------------------------------------------------

enum UnaryKind {
#define PSTAL_X(name, f, df) UNARY_##name,
  PSTAL_UNARY_CUDA(PSTAL_X)
#undef PSTAL_X
  UNARY_COUNT
};

// d GELU(x) / dx = Phi(x) + x phi(x)
__device__ __forceinline__ float gelu_df(float x) {
  float cdf = __fmul_rn(0.5f, __fadd_rn(1.f, erff(__fmul_rn(x, 0.70710678118654752f))));
  float pdf = __fmul_rn(0.39894228040143268f, expf(__fmul_rn(__fmul_rn(-0.5f, x), x)));
  return __fadd_rn(cdf, __fmul_rn(x, pdf));
}

template <int KIND>
__device__ __forceinline__ float unary_f(float x) {
  switch (KIND) {
#define PSTAL_X(name, f, df) \
  case UNARY_##name: return f;
    PSTAL_UNARY_CUDA(PSTAL_X)
#undef PSTAL_X
  }
  return 0.f;
}

// d f(x) / dx, from the input x and the output y = f(x).
template <int KIND>
__device__ __forceinline__ float unary_df(float x, float y) {
  switch (KIND) {
#define PSTAL_X(name, f, df) \
  case UNARY_##name: return df;
    PSTAL_UNARY_CUDA(PSTAL_X)
#undef PSTAL_X
  }
  return 0.f;
}

template <int KIND>
__global__ void unary_forward_kernel(float* out, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = unary_f<KIND>(x[i]);
}

template <int KIND>
__global__ void unary_backward_kernel(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = __fmul_rn(dy[i], unary_df<KIND>(x[i], y[i]));
}

template <int KIND>
void unary_launch(bool backward, float* out, const float* a, const float* x, const float* y, int64_t n) {
  if (backward)
    unary_backward_kernel<KIND><<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(out, a, x, y, n);
  else
    unary_forward_kernel<KIND><<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(out, a, n);
  PSTAL_CUDA_LAUNCH();
}

// forward: out = f(a); backward: out = a * f'(x, y)
void unary_dispatch(int kind, bool backward, float* out, const float* a, const float* x, const float* y, int64_t n) {
  switch (kind) {
#define PSTAL_X(name, f, df) \
  case UNARY_##name: unary_launch<UNARY_##name>(backward, out, a, x, y, n); break;
    PSTAL_UNARY_CUDA(PSTAL_X)
#undef PSTAL_X
  }
}

// ---- affine, axpy ---------------------------------------------------------------------------

__global__ void affine_kernel(float* out, const float* x, int64_t n, float alpha, float beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = __fadd_rn(__fmul_rn(alpha, x[i]), beta);
}

__global__ void axpy_kernel(float* y, const float* x, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}

// ---- dropout: the counter-based RNG of common/rng.h, so CPU and CUDA masks are identical ----

// keep = 1 / (1 - p) computed on the host exactly as rng.h's dropout_scale does.
__global__ void dropout_kernel(float* out, const float* x, int64_t n, uint64_t seed, float p, float keep) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float scale = uniform01(seed, (uint64_t)i) < p ? 0.f : keep;
    out[i] = __fmul_rn(x[i], scale);
  }
}

// out = residual + dropout(x): the product rounded (__fmul_rn), then the add, as the two ops.
__global__ void dropout_add_kernel(float* out, const float* x, const float* residual, int64_t n, uint64_t seed, float p,
                                   float keep) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float scale = uniform01(seed, (uint64_t)i) < p ? 0.f : keep;
    out[i] = __fadd_rn(residual[i], __fmul_rn(x[i], scale));
  }
}

__global__ void blend_forward_kernel(float* out, const float* a, const float* b, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float w = __fadd_rn(__fmul_rn(-1.f, y[i]), 1.f);
    out[i] = __fadd_rn(__fmul_rn(a[i], y[i]), __fmul_rn(b[i], w));
  }
}

__global__ void blend_backward_kernel(float* da, float* db, const float* g, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    if (da) da[i] = __fmul_rn(g[i], y[i]);
    if (db) db[i] = __fmul_rn(g[i], __fadd_rn(__fmul_rn(-1.f, y[i]), 1.f));
  }
}

struct WeightedTerms {
  int k;
  float w[MAX_WEIGHTED_TERMS];
  const float* x[MAX_WEIGHTED_TERMS];
};

__global__ void weighted_sum_kernel(float* out, WeightedTerms t, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = weighted_pairwise(t.w, t.x, i, 0, t.k);
}

}  // namespace

// ---- kernels ----------------------------------------------------------------------------------

void binary_forward(const BinaryForward& a) {
  switch (a.op) {
    case ADD: binary_launch<ADD>(a.out, a.a, a.b, a.shape, a.sa, a.sb, a.n, a.span_a, a.span_b); break;
    case SUB: binary_launch<SUB>(a.out, a.a, a.b, a.shape, a.sa, a.sb, a.n, a.span_a, a.span_b); break;
    case MUL: binary_launch<MUL>(a.out, a.a, a.b, a.shape, a.sa, a.sb, a.n, a.span_a, a.span_b); break;
    case DIV: binary_launch<DIV>(a.out, a.a, a.b, a.shape, a.sa, a.sb, a.n, a.span_a, a.span_b); break;
    case MAXIMUM: binary_launch<MAXIMUM>(a.out, a.a, a.b, a.shape, a.sa, a.sb, a.n, a.span_a, a.span_b); break;
    default: binary_launch<MINIMUM>(a.out, a.a, a.b, a.shape, a.sa, a.sb, a.n, a.span_a, a.span_b); break;
  }
}

void sum_to(const SumTo& a) {
  const std::vector<int64_t>& shape = a.shape;
  const std::vector<int64_t>& so = a.so;
  if (a.out_n > 0) PSTAL_CUDA_CHECK(cudaMemsetAsync(a.out, 0, (size_t)a.out_n * sizeof(float), cuda::stream()));
  int nd = (int)shape.size();
  int64_t inner = nd ? shape[nd - 1] : 1, inner_stride = nd ? so[nd - 1] : 0;
  if (inner == 0 || a.n <= 0) return;
  SumToPlan st{};
  st.rows_mode = inner_stride == 1;
  st.inner = st.rows_mode ? 1 : inner;
  int walked = st.rows_mode ? nd : nd - 1;  // sums mode: the last axis is summed inside each row
  std::vector<int64_t> xstride((size_t)nd + 1, 1);
  for (int d = nd - 1; d >= 0; d--) xstride[d] = xstride[d + 1] * shape[d];
  st.K = st.R = 1;
  for (int d = 0; d < walked; d++) {
    if (shape[d] == 1) continue;
    if (so[d] != 0) {
      st.kshape[st.nk] = shape[d], st.kx[st.nk] = xstride[d + 1], st.ko[st.nk] = so[d];
      st.nk++;
      st.K *= shape[d];
    } else {
      st.rshape[st.nr] = shape[d], st.rx[st.nr] = xstride[d + 1];
      st.nr++;
      st.R *= shape[d];
    }
  }
  sum_to_kernel<<<cuda::blocks_for(st.K), 256, 0, cuda::stream()>>>(a.out, a.x, st);
  PSTAL_CUDA_LAUNCH();
}

int unary_kinds() { return UNARY_COUNT; }

void unary_forward(const UnaryForward& a) { unary_dispatch(a.kind, false, a.out, a.x, nullptr, nullptr, a.n); }

void unary_backward(const UnaryBackward& a) { unary_dispatch(a.kind, true, a.dx, a.dy, a.x, a.y, a.n); }

void affine(const Affine& a) {
  affine_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.out, a.x, a.n, a.alpha, a.beta);
  PSTAL_CUDA_LAUNCH();
}

void axpy(const Axpy& a) {
  axpy_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.y, a.x, a.n, a.alpha);
  PSTAL_CUDA_LAUNCH();
}

void dropout(const Dropout& a) {
  float keep = 1.f / (1.f - a.p);
  dropout_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.out, a.x, a.n, a.seed, a.p, keep);
  PSTAL_CUDA_LAUNCH();
}

void dropout_add(const DropoutAdd& a) {
  float keep = 1.f / (1.f - a.p);
  dropout_add_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.out, a.x, a.residual, a.n, a.seed, a.p, keep);
  PSTAL_CUDA_LAUNCH();
}

void blend_forward(const Blend& a) {
  blend_forward_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.out, a.a, a.b, a.y, a.n);
  PSTAL_CUDA_LAUNCH();
}

void blend_backward(const Blend& a) {
  blend_backward_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.da, a.db, a.g, a.y, a.n);
  PSTAL_CUDA_LAUNCH();
}

void weighted_sum(const WeightedSum& a) {
  WeightedTerms t{a.k, {}, {}};
  for (int i = 0; i < a.k; i++) t.w[i] = a.w[i], t.x[i] = a.x[i];
  weighted_sum_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.out, t, a.n);
  PSTAL_CUDA_LAUNCH();
}

// d_k = w_k g + 0: affine's kernel, once per wanted gradient
void weighted_sum_backward(const WeightedSumBackward& a) {
  for (int k = 0; k < a.k; k++) {
    if (!a.d[k]) continue;
    affine_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.d[k], a.g, a.n, a.w[k], 0.f);
    PSTAL_CUDA_LAUNCH();
  }
}

}  // namespace pstal
