// norm.cc: the arguments of the ops of ops/norm.h, read and checked once for both addons.
#include "ops/norm.h"

#include <string>

#include "common/op.h"

namespace pstal {
// softmax_forward(out, x, rows, cols, log)
PSTAL_OP(softmax_forward) {
  int64_t rows = args.i64(2, "rows"), cols = args.i64(3, "cols");
  bool log = args.flag(4, "log");
  PSTAL_CHECK(args, rows >= 0 && cols >= 1, "softmax needs at least one column");
  float* y = args.buf(0, rows * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  softmax_forward(SoftmaxForward{rows, cols, log, y, x});
  return args.env().Undefined();
}

// softmax_backward(dx, dy, y, rows, cols, log): y is the forward output
PSTAL_OP(softmax_backward) {
  int64_t rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  bool log = args.flag(5, "log");
  float* dx = args.buf(0, rows * cols, "dx");
  const float* dy = args.buf(1, rows * cols, "dy");
  const float* y = args.buf(2, rows * cols, "y");
  softmax_backward(SoftmaxBackward{rows, cols, log, dx, dy, y});
  return args.env().Undefined();
}

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
  layernorm_forward(LayernormForward{rows, cols, eps, out, mean, rstd, x, w, b});
  return args.env().Undefined();
}

// layernorm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight, rows, cols, accumulate)
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
  bool accumulate = args.has(10) ? args.flag(10, "accumulate") : false;
  PSTAL_CHECK(args, dw != db && dx != dw && dx != db, "dx, dweight and dbias must be distinct buffers");
  layernorm_backward(LayernormBackward{rows, cols, dx, dw, db, dy, x, mean, rstd, w, accumulate});
  return args.env().Undefined();
}

// l2norm_forward(out, norm, x, rows, cols, eps): out = x / max(||x||, eps) per row
PSTAL_OP(l2norm_forward) {
  int64_t rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  float eps = (float)args.f64(5, "eps");
  float* out = args.buf(0, rows * cols, "out");
  float* norm = args.buf(1, rows, "norm");
  const float* x = args.buf(2, rows * cols, "x");
  l2norm_forward(L2normForward{rows, cols, eps, out, norm, x});
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
  l2norm_backward(L2normBackward{rows, cols, eps, dx, dy, x, norm});
  return args.env().Undefined();
}

}  // namespace pstal
