// ---------------------------------------------------------------------------------------------
// softmax.cc: softmax and log-softmax over the last axis of [rows, cols], forward and backward.
// The shared row kernels are also used by attention.cc.
// ---------------------------------------------------------------------------------------------
#include "cpu/softmax.h"

#include <cmath>

#include "common/op.h"
#include "common/parallel.h"

namespace pstal {

void softmax_row(float* y, const float* x, int64_t n, bool log) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  double s = 0;
  for (int64_t j = 0; j < n; j++) s += std::exp((double)(x[j] - m));
  if (log) {
    float lse = m + (float)std::log(s);
    for (int64_t j = 0; j < n; j++) y[j] = x[j] - lse;
  } else {
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < n; j++) y[j] = std::exp(x[j] - m) * inv;
  }
}

void softmax_row_backward(float* dx, const float* dy, const float* y, int64_t n, bool log) {
  if (log) {  // dx = dy - softmax * sum(dy)
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += dy[j];
    for (int64_t j = 0; j < n; j++) dx[j] = dy[j] - std::exp(y[j]) * (float)s;
  } else {  // dx = y * (dy - sum(dy * y))
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)dy[j] * y[j];
    for (int64_t j = 0; j < n; j++) dx[j] = y[j] * (dy[j] - (float)s);
  }
}

// softmax_forward(out, x, rows, cols, log)
PSTAL_OP(softmax_forward) {
  int64_t rows = args.i64(2, "rows"), cols = args.i64(3, "cols");
  bool log = args.flag(4, "log");
  PSTAL_CHECK(args, rows >= 0 && cols >= 1, "softmax needs at least one column");
  float* y = args.buf(0, rows * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_row(y + r * cols, x + r * cols, cols, log);
  });
  return args.env().Undefined();
}

// softmax_backward(dx, dy, y, rows, cols, log): y is the forward output
PSTAL_OP(softmax_backward) {
  int64_t rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  bool log = args.flag(5, "log");
  float* dx = args.buf(0, rows * cols, "dx");
  const float* dy = args.buf(1, rows * cols, "dy");
  const float* y = args.buf(2, rows * cols, "y");
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_row_backward(dx + r * cols, dy + r * cols, y + r * cols, cols, log);
  });
  return args.env().Undefined();
}

}  // namespace pstal
