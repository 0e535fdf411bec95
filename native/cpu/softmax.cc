// ---------------------------------------------------------------------------------------------
// softmax.cc: softmax and log-softmax over the last axis of [rows, cols], forward and backward.
// The shared row kernels are also used by attention.cc.
// ---------------------------------------------------------------------------------------------
#include "cpu/softmax.h"

#include <cmath>
#include <cstring>

#include "common/op.h"
#include "common/parallel.h"

namespace pstal {

namespace {

// y[j] = exp(x[j] - shift) for a whole row, in a loop the compiler vectorizes (no libm call):
// Cephes' expf, i.e. n = round(v log2 e) by the 1.5 * 2^23 trick, the remainder f = v - n ln 2 in two
// parts, a degree-5 polynomial for exp(f), and 2^n from the exponent bits; about 1 ulp on
// [-87, 88]. Softmax arguments are <= 0; below -87 the result (< 1.7e-38) is flushed to 0.
// Measured: the per-element libm exp (twice per element, once in double) made the softmax of
// attention 18 ns an element, the largest cost of a D = 256 test pass.
__attribute__((target_clones("avx2", "default"))) void exp_shifted_row(float* y, const float* x, float shift,
                                                                      int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    float v = x[j] - shift;
    bool underflow = v < -87.f;
    v = underflow ? -87.f : (v > 88.f ? 88.f : v);
    float r = (v * 1.44269504088896341f + 12582912.f) - 12582912.f;
    float f = v - r * 0.693359375f;
    f = f - r * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    p = p * (f * f) + f + 1.f;
    int32_t bits = ((int32_t)r + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    y[j] = underflow ? 0.f : p * scale;
  }
}

// Sum of a row in double, four independent accumulators (no serial dependency chain).
double sum_row(const float* y, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += y[j];
    s1 += y[j + 1];
    s2 += y[j + 2];
    s3 += y[j + 3];
  }
  for (; j < n; j++) s0 += y[j];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

// y may alias x (attention normalises its scores in place).
void softmax_row(float* y, const float* x, int64_t n, bool log) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  if (log) {
    // y holds the exponentials only to sum them; in place there is nowhere to put them.
    if (y == x) {
      double s = 0;
      for (int64_t j = 0; j < n; j++) s += std::exp((double)(x[j] - m));
      float lse = m + (float)std::log(s);
      for (int64_t j = 0; j < n; j++) y[j] = x[j] - lse;
      return;
    }
    exp_shifted_row(y, x, m, n);
    float lse = m + (float)std::log(sum_row(y, n));
    for (int64_t j = 0; j < n; j++) y[j] = x[j] - lse;
  } else {
    exp_shifted_row(y, x, m, n);
    float inv = (float)(1.0 / sum_row(y, n));
    for (int64_t j = 0; j < n; j++) y[j] *= inv;
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
