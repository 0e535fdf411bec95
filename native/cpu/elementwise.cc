// ---------------------------------------------------------------------------------------------
// elementwise.cc: broadcasting binary arithmetic, unary functions (activations, exp/log) with
// their derivatives, affine scaling, in-place accumulation, and seeded dropout.
//
// Broadcasting is described by the output shape and, per operand, strides in output coordinates
// (0 along a broadcast axis); lib/ops/elementwise.ts computes them. The backward of a broadcast is
// sum_to: summing a gradient of the output's shape down to an operand's shape.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>

#include "common/op.h"
#include "common/parallel.h"
#include "common/rng.h"

namespace pstal {
namespace {

enum Binary { ADD = 0, SUB = 1, MUL = 2, DIV = 3, MAXIMUM = 4, MINIMUM = 5 };

template <int OP>
inline float apply(float a, float b) {
  if (OP == ADD) return a + b;
  if (OP == SUB) return a - b;
  if (OP == MUL) return a * b;
  if (OP == DIV) return a / b;
  if (OP == MAXIMUM) return a > b ? a : b;
  return a < b ? a : b;
}

constexpr int MAX_DIMS = 8;

// Offsets of output element `i` in a and b given the output shape and the operands' strides.
struct Broadcast {
  int nd;
  int64_t shape[MAX_DIMS], sa[MAX_DIMS], sb[MAX_DIMS];
  void offsets(int64_t i, int64_t& oa, int64_t& ob) const {
    oa = ob = 0;
    for (int d = nd - 1; d >= 0; d--) {
      int64_t c = i % shape[d];
      i /= shape[d];
      oa += c * sa[d];
      ob += c * sb[d];
    }
  }
};

template <int OP>
void binary_kernel(float* out, const float* a, const float* b, const Broadcast& bc, int64_t n) {
  // Fast paths: equal contiguous operands, or a row vector broadcast along the last axis.
  bool a_contig = true, b_contig = true;
  int64_t stride = 1;
  for (int d = bc.nd - 1; d >= 0; d--) {
    if (bc.shape[d] != 1) {
      if (bc.sa[d] != stride) a_contig = false;
      if (bc.sb[d] != stride) b_contig = false;
    }
    stride *= bc.shape[d];
  }
  if (a_contig && b_contig) {
    parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; i++) out[i] = apply<OP>(a[i], b[i]);
    });
    return;
  }
  int64_t inner = bc.nd ? bc.shape[bc.nd - 1] : 1;
  parallel_for(n / (inner ? inner : 1), std::max<int64_t>(1, (1 << 14) / (inner ? inner : 1)), [&](int64_t s, int64_t e) {
    int64_t la = bc.nd ? bc.sa[bc.nd - 1] : 0, lb = bc.nd ? bc.sb[bc.nd - 1] : 0;
    for (int64_t r = s; r < e; r++) {
      int64_t oa, ob;
      bc.offsets(r * inner, oa, ob);
      float* o = out + r * inner;
      const float* pa = a + oa;
      const float* pb = b + ob;
      if (la == 1 && lb == 1)
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[j], pb[j]);
      else if (la == 1 && lb == 0)
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[j], pb[0]);
      else if (la == 0 && lb == 1)
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[0], pb[j]);
      else
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[j * la], pb[j * lb]);
    }
  });
}

int64_t span(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t m = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 0) return 0;
    m += (shape[d] - 1) * strides[d];
  }
  return m + 1;
}

enum Unary { RELU = 0, GELU = 1, SIGMOID = 2, EXP = 3, LOG = 4, TANH = 5, NEG = 6, SQRT = 7, ABS = 8 };

inline float unary_f(int kind, float x) {
  switch (kind) {
    case RELU: return x > 0.f ? x : 0.f;
    case GELU: return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));  // exact GELU, as PyTorch's default
    case SIGMOID: return 1.f / (1.f + std::exp(-x));
    case EXP: return std::exp(x);
    case LOG: return std::log(x);
    case TANH: return std::tanh(x);
    case NEG: return -x;
    case SQRT: return std::sqrt(x);
    case ABS: return std::fabs(x);
  }
  return 0.f;
}

// d f(x) / dx, from the input x and the output y = f(x).
inline float unary_df(int kind, float x, float y) {
  switch (kind) {
    case RELU: return x > 0.f ? 1.f : 0.f;
    case GELU: {
      float cdf = 0.5f * (1.f + std::erf(x * 0.70710678118654752f));
      float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
      return cdf + x * pdf;
    }
    case SIGMOID: return y * (1.f - y);
    case EXP: return y;
    case LOG: return 1.f / x;
    case TANH: return 1.f - y * y;
    case NEG: return -1.f;
    case SQRT: return 0.5f / y;
    case ABS: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
  }
  return 0.f;
}

}  // namespace

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
  float* out = args.buf(1, n, "out");
  const float* a = args.buf(2, span(shape, sa), "a");
  const float* b = args.buf(3, span(shape, sb), "b");
  if (n == 0) return args.env().Undefined();
  Broadcast bc;
  bc.nd = (int)shape.size();
  for (int d = 0; d < bc.nd; d++) bc.shape[d] = shape[d], bc.sa[d] = sa[d], bc.sb[d] = sb[d];
  switch (op) {
    case ADD: binary_kernel<ADD>(out, a, b, bc, n); break;
    case SUB: binary_kernel<SUB>(out, a, b, bc, n); break;
    case MUL: binary_kernel<MUL>(out, a, b, bc, n); break;
    case DIV: binary_kernel<DIV>(out, a, b, bc, n); break;
    case MAXIMUM: binary_kernel<MAXIMUM>(out, a, b, bc, n); break;
    default: binary_kernel<MINIMUM>(out, a, b, bc, n); break;
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
  for (int64_t i = 0; i < out_n; i++) out[i] = 0.f;
  int nd = (int)shape.size();
  int64_t inner = nd ? shape[nd - 1] : 1, inner_stride = nd ? so[nd - 1] : 0;
  if (inner == 0) return args.env().Undefined();
  Broadcast bc;
  bc.nd = nd;
  for (int d = 0; d < nd; d++) bc.shape[d] = shape[d], bc.sa[d] = so[d], bc.sb[d] = 0;
  // Serial: different input rows may land on the same output row. Sizes here are small.
  for (int64_t r = 0; r < n / inner; r++) {
    int64_t oo, unused;
    bc.offsets(r * inner, oo, unused);
    const float* xr = x + r * inner;
    float* o = out + oo;
    if (inner_stride == 1)
      for (int64_t j = 0; j < inner; j++) o[j] += xr[j];
    else {
      double s = 0;
      for (int64_t j = 0; j < inner; j++) s += xr[j];
      o[0] += (float)s;
    }
  }
  return args.env().Undefined();
}

// unary_forward(kind, out, x, n)
PSTAL_OP(unary_forward) {
  int64_t kind = args.i64(0, "kind"), n = args.i64(3, "n");
  PSTAL_CHECK(args, kind >= 0 && kind <= 8, "unknown unary kind " + std::to_string(kind));
  float* out = args.buf(1, n, "out");
  const float* x = args.buf(2, n, "x");
  parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) out[i] = unary_f((int)kind, x[i]);
  });
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
  parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) dx[i] = dy[i] * unary_df((int)kind, x[i], y[i]);
  });
  return args.env().Undefined();
}

// affine(out, x, n, alpha, beta): out = alpha * x + beta (scalar arithmetic, scaling a gradient)
PSTAL_OP(affine) {
  int64_t n = args.i64(2, "n");
  float alpha = (float)args.f64(3, "alpha"), beta = (float)args.f64(4, "beta");
  float* out = args.buf(0, n, "out");
  const float* x = args.buf(1, n, "x");
  for (int64_t i = 0; i < n; i++) out[i] = alpha * x[i] + beta;
  return args.env().Undefined();
}

// axpy(y, x, n, alpha): y += alpha * x (gradient accumulation, in place)
PSTAL_OP(axpy) {
  int64_t n = args.i64(2, "n");
  float alpha = (float)args.f64(3, "alpha");
  float* y = args.buf(0, n, "y");
  const float* x = args.buf(1, n, "x");
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
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
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) out[i] = x[i] * dropout_scale(s, (uint64_t)i, pf);
  });
  return args.env().Undefined();
}

}  // namespace pstal
