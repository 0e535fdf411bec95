// ---------------------------------------------------------------------------------------------
// elementwise.cu: the CUDA twin of native/cpu/elementwise.cc (the readable reference): broadcasting
// binary arithmetic, sum_to, unary functions with their derivatives, affine, axpy and dropout.
// Same op names, argument order, checks and error messages as the CPU file.
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

namespace pstal {
namespace {

// ---- binary ---------------------------------------------------------------------------------

enum Binary { ADD = 0, SUB = 1, MUL = 2, DIV = 3, MAXIMUM = 4, MINIMUM = 5 };

template <int OP>
__device__ __forceinline__ float apply(float a, float b) {
  if (OP == ADD) return __fadd_rn(a, b);
  if (OP == SUB) return __fsub_rn(a, b);
  if (OP == MUL) return __fmul_rn(a, b);
  if (OP == DIV) return __fdiv_rn(a, b);
  if (OP == MAXIMUM) return a > b ? a : b;
  return a < b ? a : b;
}

constexpr int MAX_DIMS = 8;

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

int64_t span(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t m = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 0) return 0;
    m += (shape[d] - 1) * strides[d];
  }
  return m + 1;
}

// ---- sum_to ---------------------------------------------------------------------------------
// The CPU walks the rows of x (its last axis is a row) in order and adds each into the output.
// Here one thread owns one output position (a tuple of kept coordinates) and walks the summed
// coordinates in row-major order, which visits the same inputs in the same order.
//   rows mode (last out stride 1): out[o + j] += x[row, j], in float, over rows.
//   sums mode (otherwise):         out[o] += (float)(double sum of x[row, :]), over rows.

struct SumTo {
  int nk, nr;                                            // kept and summed axes (size-1 axes dropped)
  int64_t kshape[MAX_DIMS], kx[MAX_DIMS], ko[MAX_DIMS];  // kept: extent, x stride, out stride
  int64_t rshape[MAX_DIMS], rx[MAX_DIMS];                // summed: extent, x stride
  int64_t K, R;                                          // products of kshape and rshape
  int64_t inner;                                         // sums mode: the row length summed in double
  bool rows_mode;
};

constexpr int SUM_TO_BATCH = 8;

__global__ void sum_to_kernel(float* out, const float* x, SumTo st) {
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

enum Unary { RELU = 0, GELU = 1, SIGMOID = 2, EXP = 3, LOG = 4, TANH = 5, NEG = 6, SQRT = 7, ABS = 8 };

template <int KIND>
__device__ __forceinline__ float unary_f(float x) {
  switch (KIND) {
    case RELU: return x > 0.f ? x : 0.f;
    case GELU: return __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.f, erff(__fmul_rn(x, 0.70710678118654752f))));
    case SIGMOID: return __fdiv_rn(1.f, __fadd_rn(1.f, expf(-x)));
    case EXP: return expf(x);
    case LOG: return logf(x);
    case TANH: return tanhf(x);
    case NEG: return -x;
    case SQRT: return sqrtf(x);
    case ABS: return fabsf(x);
  }
  return 0.f;
}

// d f(x) / dx, from the input x and the output y = f(x).
template <int KIND>
__device__ __forceinline__ float unary_df(float x, float y) {
  switch (KIND) {
    case RELU: return x > 0.f ? 1.f : 0.f;
    case GELU: {
      float cdf = __fmul_rn(0.5f, __fadd_rn(1.f, erff(__fmul_rn(x, 0.70710678118654752f))));
      float pdf = __fmul_rn(0.39894228040143268f, expf(__fmul_rn(__fmul_rn(-0.5f, x), x)));
      return __fadd_rn(cdf, __fmul_rn(x, pdf));
    }
    case SIGMOID: return __fmul_rn(y, __fsub_rn(1.f, y));
    case EXP: return y;
    case LOG: return __fdiv_rn(1.f, x);
    case TANH: return __fsub_rn(1.f, __fmul_rn(y, y));
    case NEG: return -1.f;
    case SQRT: return __fdiv_rn(0.5f, y);
    case ABS: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
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
    case RELU: unary_launch<RELU>(backward, out, a, x, y, n); break;
    case GELU: unary_launch<GELU>(backward, out, a, x, y, n); break;
    case SIGMOID: unary_launch<SIGMOID>(backward, out, a, x, y, n); break;
    case EXP: unary_launch<EXP>(backward, out, a, x, y, n); break;
    case LOG: unary_launch<LOG>(backward, out, a, x, y, n); break;
    case TANH: unary_launch<TANH>(backward, out, a, x, y, n); break;
    case NEG: unary_launch<NEG>(backward, out, a, x, y, n); break;
    case SQRT: unary_launch<SQRT>(backward, out, a, x, y, n); break;
    default: unary_launch<ABS>(backward, out, a, x, y, n); break;
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

}  // namespace

// ---- ops ------------------------------------------------------------------------------------

// binary_forward(op, out, a, b, out_shape, a_strides, b_strides)
PSTAL_OP(binary_forward) {
  int64_t op = args.i64(0, "op");
  std::vector<int64_t> shape = args.ints(4, "out_shape"), sa = args.ints(5, "a_strides"), sb = args.ints(6, "b_strides");
  PSTAL_CHECK(args, op >= 0 && op <= 5, "unknown binary op " + std::to_string(op));
  PSTAL_CHECK(args, shape.size() <= MAX_DIMS && sa.size() == shape.size() && sb.size() == shape.size(),
              "shape and strides must have equal length <= 8");
  int64_t n = 1;
  for (int64_t s : shape) {
    PSTAL_CHECK(args, s >= 0, "negative dimension in " + shape_str(shape));
    n *= s;
  }
  int64_t span_a = span(shape, sa), span_b = span(shape, sb);
  float* out = args.buf(1, n, "out");
  const float* a = args.buf(2, span_a, "a");
  const float* b = args.buf(3, span_b, "b");
  if (n == 0) return args.env().Undefined();
  switch (op) {
    case ADD: binary_launch<ADD>(out, a, b, shape, sa, sb, n, span_a, span_b); break;
    case SUB: binary_launch<SUB>(out, a, b, shape, sa, sb, n, span_a, span_b); break;
    case MUL: binary_launch<MUL>(out, a, b, shape, sa, sb, n, span_a, span_b); break;
    case DIV: binary_launch<DIV>(out, a, b, shape, sa, sb, n, span_a, span_b); break;
    case MAXIMUM: binary_launch<MAXIMUM>(out, a, b, shape, sa, sb, n, span_a, span_b); break;
    default: binary_launch<MINIMUM>(out, a, b, shape, sa, sb, n, span_a, span_b); break;
  }
  return args.env().Undefined();
}

// sum_to(out, x, x_shape, out_strides): out (zeroed here) += x summed over axes where out_strides is 0.
PSTAL_OP(sum_to) {
  std::vector<int64_t> shape = args.ints(2, "x_shape"), so = args.ints(3, "out_strides");
  PSTAL_CHECK(args, shape.size() == so.size() && shape.size() <= MAX_DIMS, "shape and strides must have equal length <= 8");
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  int64_t out_n = span(shape, so);
  float* out = args.buf(0, out_n, "out");
  const float* x = args.buf(1, n, "x");
  if (out_n > 0) PSTAL_CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)out_n * sizeof(float), cuda::stream()));
  int nd = (int)shape.size();
  int64_t inner = nd ? shape[nd - 1] : 1, inner_stride = nd ? so[nd - 1] : 0;
  if (inner == 0 || n <= 0) return args.env().Undefined();
  SumTo st{};
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
  sum_to_kernel<<<cuda::blocks_for(st.K), 256, 0, cuda::stream()>>>(out, x, st);
  PSTAL_CUDA_LAUNCH();
  return args.env().Undefined();
}

// unary_forward(kind, out, x, n)
PSTAL_OP(unary_forward) {
  int64_t kind = args.i64(0, "kind"), n = args.i64(3, "n");
  PSTAL_CHECK(args, kind >= 0 && kind <= 8, "unknown unary kind " + std::to_string(kind));
  float* out = args.buf(1, n, "out");
  const float* x = args.buf(2, n, "x");
  if (n > 0) unary_dispatch((int)kind, false, out, x, nullptr, nullptr, n);
  return args.env().Undefined();
}

// unary_backward(kind, dx, dy, x, y, n): dx = dy * f'(x)
PSTAL_OP(unary_backward) {
  int64_t kind = args.i64(0, "kind"), n = args.i64(5, "n");
  PSTAL_CHECK(args, kind >= 0 && kind <= 8, "unknown unary kind " + std::to_string(kind));
  float* dx = args.buf(1, n, "dx");
  const float* dy = args.buf(2, n, "dy");
  const float* x = args.buf(3, n, "x");
  const float* y = args.buf(4, n, "y");
  if (n > 0) unary_dispatch((int)kind, true, dx, dy, x, y, n);
  return args.env().Undefined();
}

// affine(out, x, n, alpha, beta): out = alpha * x + beta (scalar arithmetic, scaling a gradient)
PSTAL_OP(affine) {
  int64_t n = args.i64(2, "n");
  float alpha = (float)args.f64(3, "alpha"), beta = (float)args.f64(4, "beta");
  float* out = args.buf(0, n, "out");
  const float* x = args.buf(1, n, "x");
  if (n > 0) {
    affine_kernel<<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(out, x, n, alpha, beta);
    PSTAL_CUDA_LAUNCH();
  }
  return args.env().Undefined();
}

// axpy(y, x, n, alpha): y += alpha * x (gradient accumulation, in place)
PSTAL_OP(axpy) {
  int64_t n = args.i64(2, "n");
  float alpha = (float)args.f64(3, "alpha");
  float* y = args.buf(0, n, "y");
  const float* x = args.buf(1, n, "x");
  if (n > 0) {
    axpy_kernel<<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(y, x, n, alpha);
    PSTAL_CUDA_LAUNCH();
  }
  return args.env().Undefined();
}

// dropout(out, x, n, p, seed): out = x * mask(seed), mask 0 w.p. p else 1/(1-p). The backward is the
// same call on the gradient with the same seed (the mask is regenerated, never stored).
PSTAL_OP(dropout) {
  int64_t n = args.i64(2, "n");
  double p = args.f64(3, "p");
  double seed = args.f64(4, "seed");
  PSTAL_CHECK(args, p >= 0 && p < 1, "p must be in [0, 1), received " + std::to_string(p));
  float* out = args.buf(0, n, "out");
  const float* x = args.buf(1, n, "x");
  uint64_t s = (uint64_t)seed;
  float pf = (float)p;
  float keep = 1.f / (1.f - pf);
  if (n > 0) {
    dropout_kernel<<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(out, x, n, s, pf, keep);
    PSTAL_CUDA_LAUNCH();
  }
  return args.env().Undefined();
}

}  // namespace pstal
