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
PSTAL_OP(dropout) {
  Dropout a;
  a.n = args.i64(2, "n");
  double p = args.f64(3, "p");
  double seed = args.f64(4, "seed");
  PSTAL_CHECK(args, p >= 0 && p < 1, "p must be in [0, 1), received " + std::to_string(p));
  a.out = args.buf(0, a.n, "out");
  a.x = args.buf(1, a.n, "x");
  a.seed = (uint64_t)seed;
  a.p = (float)p;
  if (a.n > 0) dropout(a);
  return args.env().Undefined();
}

}  // namespace pstal
