// ---------------------------------------------------------------------------------------------
// index.cc: moving data without arithmetic: row gather (and its scatter-add backward), strided
// block copies (concat and slice along any axis, and their backwards), 2-D transpose, and row
// L2 normalisation (F.normalize, used by the contrastive loss of SPEC §2).
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>

#include "common/op.h"
#include "common/parallel.h"

namespace pstal {

// gather_rows_forward(out, x, index Int32Array, rows_x, cols): out[i] = x[index[i]]
PSTAL_OP(gather_rows_forward) {
  int64_t n_idx, rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  const int32_t* idx = args.i32(2, "index", &n_idx);
  float* out = args.buf(0, n_idx * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  for (int64_t i = 0; i < n_idx; i++)
    PSTAL_CHECK(args, idx[i] >= 0 && idx[i] < rows,
                "index " + std::to_string(idx[i]) + " at position " + std::to_string(i) + " is out of range for " +
                    std::to_string(rows) + " rows");
  for (int64_t i = 0; i < n_idx; i++) std::copy(x + idx[i] * cols, x + (idx[i] + 1) * cols, out + i * cols);
  return args.env().Undefined();
}

// gather_rows_backward(dx, dy, index, rows_x, cols): dx = 0; dx[index[i]] += dy[i]
PSTAL_OP(gather_rows_backward) {
  int64_t n_idx, rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  const int32_t* idx = args.i32(2, "index", &n_idx);
  float* dx = args.buf(0, rows * cols, "dx");
  const float* dy = args.buf(1, n_idx * cols, "dy");
  for (int64_t i = 0; i < n_idx; i++)
    PSTAL_CHECK(args, idx[i] >= 0 && idx[i] < rows, "index " + std::to_string(idx[i]) + " out of range");
  std::fill(dx, dx + rows * cols, 0.f);
  for (int64_t i = 0; i < n_idx; i++)
    for (int64_t j = 0; j < cols; j++) dx[idx[i] * cols + j] += dy[i * cols + j];
  return args.env().Undefined();
}

// block_copy(dst, src, outer, len, dst_stride, dst_off, src_stride, src_off, accumulate):
//   for o < outer, j < len: dst[o*dst_stride + dst_off + j] (+)= src[o*src_stride + src_off + j]
PSTAL_OP(block_copy) {
  int64_t outer = args.i64(2, "outer"), len = args.i64(3, "len"), ds = args.i64(4, "dst_stride"), doff = args.i64(5, "dst_off"),
          ss = args.i64(6, "src_stride"), soff = args.i64(7, "src_off");
  bool acc = args.flag(8, "accumulate");
  PSTAL_CHECK(args, outer >= 0 && len >= 0 && ds >= 0 && doff >= 0 && ss >= 0 && soff >= 0, "negative block geometry");
  if (outer == 0 || len == 0) return args.env().Undefined();
  float* dst = args.buf(0, (outer - 1) * ds + doff + len, "dst");
  const float* src = args.buf(1, (outer - 1) * ss + soff + len, "src");
  for (int64_t o = 0; o < outer; o++) {
    float* d = dst + o * ds + doff;
    const float* s = src + o * ss + soff;
    if (acc)
      for (int64_t j = 0; j < len; j++) d[j] += s[j];
    else
      std::copy(s, s + len, d);
  }
  return args.env().Undefined();
}

// transpose2d(out, x, rows, cols): out [cols, rows]
PSTAL_OP(transpose2d) {
  int64_t rows = args.i64(2, "rows"), cols = args.i64(3, "cols");
  float* out = args.buf(0, rows * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  constexpr int64_t B = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += B)
    for (int64_t j0 = 0; j0 < cols; j0 += B)
      for (int64_t i = i0; i < std::min(rows, i0 + B); i++)
        for (int64_t j = j0; j < std::min(cols, j0 + B); j++) out[j * rows + i] = x[i * cols + j];
  return args.env().Undefined();
}

// l2norm_forward(out, norm, x, rows, cols, eps): out = x / max(||x||, eps) per row
PSTAL_OP(l2norm_forward) {
  int64_t rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  float eps = (float)args.f64(5, "eps");
  float* out = args.buf(0, rows * cols, "out");
  float* norm = args.buf(1, rows, "norm");
  const float* x = args.buf(2, rows * cols, "x");
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      double s = 0;
      for (int64_t j = 0; j < cols; j++) s += (double)x[r * cols + j] * x[r * cols + j];
      float n = (float)std::sqrt(s);
      norm[r] = n;
      float inv = 1.f / std::max(n, eps);
      for (int64_t j = 0; j < cols; j++) out[r * cols + j] = x[r * cols + j] * inv;
    }
  });
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
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      const float* g = dy + r * cols;
      float n = norm[r];
      if (n > eps) {  // d(x/n) = (g - xhat (xhat . g)) / n
        double dot = 0;
        for (int64_t j = 0; j < cols; j++) dot += (double)g[j] * xr[j];
        float c = (float)(dot / ((double)n * n));
        for (int64_t j = 0; j < cols; j++) dx[r * cols + j] = (g[j] - xr[j] * c) / n;
      } else {
        for (int64_t j = 0; j < cols; j++) dx[r * cols + j] = g[j] / eps;
      }
    }
  });
  return args.env().Undefined();
}

}  // namespace pstal
