// ---------------------------------------------------------------------------------------------
// layernorm.cc: LayerNorm over the last axis of [rows, cols] (the RAB's norm1/norm2, SPEC §2).
// Forward saves each row's mean and 1/std for the backward (llm.c's layernorm habit).
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <vector>

#include "common/op.h"
#include "common/parallel.h"

namespace pstal {

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
  parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      double s = 0;
      for (int64_t j = 0; j < cols; j++) s += xr[j];
      double m = s / cols, v = 0;
      for (int64_t j = 0; j < cols; j++) v += ((double)xr[j] - m) * ((double)xr[j] - m);
      float rs = (float)(1.0 / std::sqrt(v / cols + eps));
      float mf = (float)m;
      float* o = out + r * cols;
      for (int64_t j = 0; j < cols; j++) o[j] = (xr[j] - mf) * rs * w[j] + b[j];
      mean[r] = mf;
      rstd[r] = rs;
    }
  });
  return args.env().Undefined();
}

// layernorm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight, rows, cols)
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
  int nt = num_threads();
  std::vector<double> dw_part((size_t)(nt * cols), 0.0), db_part((size_t)(nt * cols), 0.0);
  parallel_run(nt, [&](int t, int tasks) {
    int64_t r0 = rows * t / tasks, r1 = rows * (t + 1) / tasks;
    double* dwp = dw_part.data() + t * cols;
    double* dbp = db_part.data() + t * cols;
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      float m = mean[r], rs = rstd[r];
      // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
      double sg = 0, sgx = 0;
      for (int64_t j = 0; j < cols; j++) {
        float xhat = (xr[j] - m) * rs;
        float g = dyr[j] * w[j];
        sg += g;
        sgx += (double)g * xhat;
        dwp[j] += (double)dyr[j] * xhat;
        dbp[j] += dyr[j];
      }
      float mg = (float)(sg / cols), mgx = (float)(sgx / cols);
      float* dxr = dx + r * cols;
      for (int64_t j = 0; j < cols; j++) {
        float xhat = (xr[j] - m) * rs;
        dxr[j] = rs * (dyr[j] * w[j] - mg - xhat * mgx);
      }
    }
  });
  for (int64_t j = 0; j < cols; j++) {
    double a = 0, b = 0;
    for (int t = 0; t < nt; t++) a += dw_part[t * cols + j], b += db_part[t * cols + j];
    dw[j] = (float)a;
    db[j] = (float)b;
  }
  return args.env().Undefined();
}

}  // namespace pstal
