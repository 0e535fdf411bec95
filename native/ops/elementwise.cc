// ---------------------------------------------------------------------------------------------
// elementwise.cc: the elementwise ops' arguments (ops/elementwise.h), read and checked once for
// both addons, then the backend's kernel.
// ---------------------------------------------------------------------------------------------
#include "ops/elementwise.h"

#include <string>

#include "common/op.h"

namespace pstal {

// binary_forward(op, out, a, b, out_shape, a_strides, b_strides)
PSTAL_OP(binary_forward) {
  BinaryForward a;
  int64_t op = args.i64(0, "op");
  a.shape = args.ints(4, "out_shape"), a.sa = args.ints(5, "a_strides"), a.sb = args.ints(6, "b_strides");
  PSTAL_CHECK(args, op >= ADD && op <= MINIMUM, "unknown binary op " + std::to_string(op));
  PSTAL_CHECK(args, a.shape.size() <= MAX_DIMS && a.sa.size() == a.shape.size() && a.sb.size() == a.shape.size(),
              "shape and strides must have equal length <= 8");
  a.op = (int)op;
  a.n = 1;
  for (int64_t s : a.shape) {
    PSTAL_CHECK(args, s >= 0, "negative dimension in " + shape_str(a.shape));
    a.n *= s;
  }
  a.span_a = span(a.shape, a.sa), a.span_b = span(a.shape, a.sb);
  a.out = args.buf(1, a.n, "out");
  a.a = args.buf(2, a.span_a, "a");
  a.b = args.buf(3, a.span_b, "b");
  if (a.n > 0) binary_forward(a);
  return args.env().Undefined();
}

// sum_to(out, x, x_shape, out_strides): out (zeroed here) += x summed over axes where out_strides is 0.
PSTAL_OP(sum_to) {
  SumTo a;
  a.shape = args.ints(2, "x_shape"), a.so = args.ints(3, "out_strides");
  PSTAL_CHECK(args, a.shape.size() == a.so.size() && a.shape.size() <= MAX_DIMS, "shape and strides must have equal length <= 8");
  a.n = 1;
  for (int64_t s : a.shape) a.n *= s;
  a.out_n = span(a.shape, a.so);
  a.out = args.buf(0, a.out_n, "out");
  a.x = args.buf(1, a.n, "x");
  sum_to(a);
  return args.env().Undefined();
}

static int unary_kind(Args& args) {
  int64_t kind = args.i64(0, "kind");
  PSTAL_CHECK(args, kind >= 0 && kind < unary_kinds(), "unknown unary kind " + std::to_string(kind));
  return (int)kind;
}

// unary_forward(kind, out, x, n)
PSTAL_OP(unary_forward) {
  UnaryForward a;
  a.kind = unary_kind(args), a.n = args.i64(3, "n");
  a.out = args.buf(1, a.n, "out");
  a.x = args.buf(2, a.n, "x");
  if (a.n > 0) unary_forward(a);
  return args.env().Undefined();
}

// unary_backward(kind, dx, dy, x, y, n): dx = dy * f'(x)
PSTAL_OP(unary_backward) {
  UnaryBackward a;
  a.kind = unary_kind(args), a.n = args.i64(5, "n");
  a.dx = args.buf(1, a.n, "dx");
  a.dy = args.buf(2, a.n, "dy");
  a.x = args.buf(3, a.n, "x");
  a.y = args.buf(4, a.n, "y");
  if (a.n > 0) unary_backward(a);
  return args.env().Undefined();
}

// affine(out, x, n, alpha, beta): out = alpha * x + beta (scalar arithmetic, scaling a gradient)
PSTAL_OP(affine) {
  Affine a;
  a.n = args.i64(2, "n");
  a.alpha = (float)args.f64(3, "alpha"), a.beta = (float)args.f64(4, "beta");
  a.out = args.buf(0, a.n, "out");
  a.x = args.buf(1, a.n, "x");
  if (a.n > 0) affine(a);
  return args.env().Undefined();
}

// axpy(y, x, n, alpha): y += alpha * x (gradient accumulation, in place)
PSTAL_OP(axpy) {
  Axpy a;
  a.n = args.i64(2, "n");
  a.alpha = (float)args.f64(3, "alpha");
  a.y = args.buf(0, a.n, "y");
  a.x = args.buf(1, a.n, "x");
  if (a.n > 0) axpy(a);
  return args.env().Undefined();
}

// dropout(out, x, n, p, seed): out = x * mask(seed), mask 0 w.p. p else 1/(1-p). The backward is the
// same call on the gradient with the same seed (the mask is regenerated, never stored).
// dropout_add(out, x, residual, n, p, seed)  (ops/elementwise.h): dropout with a residual, which
// comes third; both are read and checked here, in the same order.
static Napi::Value dropout_op(Args& args, bool with_residual) {
  const size_t at = with_residual ? 3 : 2;  // n, then p and seed
  DropoutAdd a{};
  a.n = args.i64(at, "n");
  const float p = args.probability(at + 1, "p");
  double seed = args.f64(at + 2, "seed");
  a.out = args.buf(0, a.n, "out");
  a.x = args.buf(1, a.n, "x");
  if (with_residual) a.residual = args.buf(2, a.n, "residual");
  a.seed = (uint64_t)seed;
  a.p = p;
  if (a.n > 0) {
    if (with_residual) dropout_add(a);
    else dropout(Dropout{a.out, a.x, a.n, a.p, a.seed});
  }
  return args.env().Undefined();
}

PSTAL_OP(dropout) { return dropout_op(args, false); }
PSTAL_OP(dropout_add) { return dropout_op(args, true); }

static int weighted_terms(Args& args, size_t weights_at, float* w) {
  int64_t k = 0;
  const float* ws = args.f32(weights_at, "weights", &k);
  PSTAL_CHECK(args, k >= 1 && k <= MAX_WEIGHTED_TERMS, "weights must hold 1 to 8 values, received " + std::to_string(k));
  PSTAL_CHECK(args, (int64_t)args.count() == (int64_t)weights_at + 1 + k,
              "expected one tensor per weight (" + std::to_string(k) + "), received " + std::to_string((int64_t)args.count() - (int64_t)weights_at - 1));
  for (int64_t i = 0; i < k; i++) w[i] = ws[i];
  return (int)k;
}

// blend_forward(out, a, b, y, n)  (ops/elementwise.h)
PSTAL_OP(blend_forward) {
  Blend a{};
  a.n = args.i64(4, "n");
  a.out = args.buf(0, a.n, "out");
  a.a = args.buf(1, a.n, "a");
  a.b = args.buf(2, a.n, "b");
  a.y = args.buf(3, a.n, "y");
  PSTAL_CHECK(args, a.out != a.a && a.out != a.b && a.out != a.y, "out must not be an input");
  if (a.n > 0) blend_forward(a);
  return args.env().Undefined();
}

// blend_backward(da|null, db|null, g, y, n)  (ops/elementwise.h)
PSTAL_OP(blend_backward) {
  Blend a{};
  a.n = args.i64(4, "n");
  a.da = args.has(0) ? args.buf(0, a.n, "da") : nullptr;
  a.db = args.has(1) ? args.buf(1, a.n, "db") : nullptr;
  a.g = args.buf(2, a.n, "g");
  a.y = args.buf(3, a.n, "y");
  for (const float* in : {a.g, a.y}) PSTAL_CHECK(args, in != a.da && in != a.db, "a gradient output must not be an input");
  PSTAL_CHECK(args, !a.da || a.da != a.db, "da and db must be distinct buffers");
  if (a.n > 0) blend_backward(a);
  return args.env().Undefined();
}

// weighted_sum(out, n, weights Float32Array, x0, x1, ...)  (ops/elementwise.h)
PSTAL_OP(weighted_sum) {
  WeightedSum a;
  a.n = args.i64(1, "n");
  a.k = weighted_terms(args, 2, a.w);
  a.out = args.buf(0, a.n, "out");
  for (int i = 0; i < a.k; i++) {
    a.x[i] = args.buf(3 + i, a.n, "x");
    PSTAL_CHECK(args, a.x[i] != a.out, "out must not be an input");
  }
  if (a.n > 0) weighted_sum(a);
  return args.env().Undefined();
}

// weighted_sum_backward(g, n, weights Float32Array, d0|null, d1|null, ...)  (ops/elementwise.h)
PSTAL_OP(weighted_sum_backward) {
  WeightedSumBackward a;
  a.n = args.i64(1, "n");
  a.k = weighted_terms(args, 2, a.w);
  a.g = args.buf(0, a.n, "g");
  for (int i = 0; i < a.k; i++) {
    a.d[i] = args.has(3 + i) ? args.buf(3 + i, a.n, "d") : nullptr;
    PSTAL_CHECK(args, a.d[i] != a.g, "a gradient output must not be g");
  }
  if (a.n > 0) weighted_sum_backward(a);
  return args.env().Undefined();
}

}  // namespace pstal
