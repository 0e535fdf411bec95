// ---------------------------------------------------------------------------------------------
// reduce.cc: sum / mean / max over one axis, and the mean of the top-k values along time (the
// video-level score of SPEC section 2, step 5), each with its backward.
//
// A tensor is viewed as [outer, len, inner] around the reduced axis; the output is [outer, inner].
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/op.h"
#include "common/parallel.h"

namespace pstal {

enum Reduce { SUM = 0, MEAN = 1, MAX = 2 };

// reduce_forward(kind, out, argmax, x, outer, len, inner): argmax (a buffer of [outer, inner]
// indices stored as floats) is written for MAX only and may be null otherwise.
PSTAL_OP(reduce_forward) {
  int64_t kind = args.i64(0, "kind"), outer = args.i64(4, "outer"), len = args.i64(5, "len"), inner = args.i64(6, "inner");
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown reduction " + std::to_string(kind));
  PSTAL_CHECK(args, outer >= 0 && len >= 1 && inner >= 0, "cannot reduce an empty axis");
  float* out = args.buf(1, outer * inner, "out");
  float* arg = kind == MAX ? args.buf(2, outer * inner, "argmax") : nullptr;
  const float* x = args.buf(3, outer * len * inner, "x");
  parallel_for(outer, 1, [&](int64_t o0, int64_t o1) {
    std::vector<double> acc((size_t)inner);
    for (int64_t o = o0; o < o1; o++) {
      const float* xo = x + o * len * inner;
      float* out_o = out + o * inner;
      if (kind == MAX) {
        float* arg_o = arg + o * inner;
        for (int64_t j = 0; j < inner; j++) out_o[j] = xo[j], arg_o[j] = 0.f;
        for (int64_t l = 1; l < len; l++)
          for (int64_t j = 0; j < inner; j++)
            if (xo[l * inner + j] > out_o[j]) out_o[j] = xo[l * inner + j], arg_o[j] = (float)l;
      } else {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t l = 0; l < len; l++)
          for (int64_t j = 0; j < inner; j++) acc[j] += xo[l * inner + j];
        double scale = kind == MEAN ? 1.0 / (double)len : 1.0;
        for (int64_t j = 0; j < inner; j++) out_o[j] = (float)(acc[j] * scale);
      }
    }
  });
  return args.env().Undefined();
}

// reduce_backward(kind, dx, dy, argmax, outer, len, inner)
PSTAL_OP(reduce_backward) {
  int64_t kind = args.i64(0, "kind"), outer = args.i64(4, "outer"), len = args.i64(5, "len"), inner = args.i64(6, "inner");
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown reduction " + std::to_string(kind));
  float* dx = args.buf(1, outer * len * inner, "dx");
  const float* dy = args.buf(2, outer * inner, "dy");
  const float* arg = kind == MAX ? args.buf(3, outer * inner, "argmax") : nullptr;
  float scale = kind == MEAN ? 1.f / (float)len : 1.f;
  parallel_for(outer, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++) {
      float* dxo = dx + o * len * inner;
      const float* dyo = dy + o * inner;
      if (kind == MAX) {
        std::fill(dxo, dxo + len * inner, 0.f);
        for (int64_t j = 0; j < inner; j++) dxo[(int64_t)arg[o * inner + j] * inner + j] = dyo[j];
      } else {
        for (int64_t l = 0; l < len; l++)
          for (int64_t j = 0; j < inner; j++) dxo[l * inner + j] = dyo[j] * scale;
      }
    }
  });
  return args.env().Undefined();
}

// topk_mean_forward(out, index, x, T, C, k): out[c] = mean of the k largest x[:, c]; index [k, C]
// keeps the rows chosen (as floats) for the backward. Ties keep the earlier row.
PSTAL_OP(topk_mean_forward) {
  int64_t T = args.i64(3, "T"), C = args.i64(4, "C"), k = args.i64(5, "k");
  PSTAL_CHECK(args, T >= 1 && C >= 0 && k >= 1 && k <= T, "need 1 <= k <= T, received k=" + std::to_string(k) + " T=" + std::to_string(T));
  float* out = args.buf(0, C, "out");
  float* index = args.buf(1, k * C, "index");
  const float* x = args.buf(2, T * C, "x");
  std::vector<int64_t> order((size_t)T);
  for (int64_t c = 0; c < C; c++) {
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      float xa = x[a * C + c], xb = x[b * C + c];
      return xa > xb || (xa == xb && a < b);
    });
    double s = 0;
    for (int64_t i = 0; i < k; i++) s += x[order[i] * C + c], index[i * C + c] = (float)order[i];
    out[c] = (float)(s / (double)k);
  }
  return args.env().Undefined();
}

// topk_mean_backward(dx, dy, index, T, C, k)
PSTAL_OP(topk_mean_backward) {
  int64_t T = args.i64(3, "T"), C = args.i64(4, "C"), k = args.i64(5, "k");
  PSTAL_CHECK(args, T >= 1 && k >= 1 && k <= T, "need 1 <= k <= T");
  float* dx = args.buf(0, T * C, "dx");
  const float* dy = args.buf(1, C, "dy");
  const float* index = args.buf(2, k * C, "index");
  std::fill(dx, dx + T * C, 0.f);
  for (int64_t i = 0; i < k; i++)
    for (int64_t c = 0; c < C; c++) dx[(int64_t)index[i * C + c] * C + c] += dy[c] / (float)k;
  return args.env().Undefined();
}

}  // namespace pstal
