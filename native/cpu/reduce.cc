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

#include "common/parallel.h"
#include "ops/reduce.h"

namespace pstal {


// reduce_forward(kind, out, argmax, x, outer, len, inner): argmax (a buffer of [outer, inner]
// indices stored as floats) is written for MAX only and may be null otherwise.
void reduce_forward(const ReduceForward& op) {
  const auto& [kind, outer, len, inner, out, arg, x] = op;
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
}

// reduce_backward(kind, dx, dy, argmax, outer, len, inner)
void reduce_backward(const ReduceBackward& op) {
  const auto& [kind, outer, len, inner, dx, dy, arg] = op;
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
}

// topk_mean_forward(out, index, x, T, C, k): out[c] = mean of the k largest x[:, c]; index [k, C]
// keeps the rows chosen (as floats) for the backward. Ties keep the earlier row.
void topk_mean_forward(const TopkMeanForward& op) {
  const auto& [T, C, k, out, index, x] = op;
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
}

// topk_mean_backward(dx, dy, index, T, C, k)
void topk_mean_backward(const TopkMeanBackward& op) {
  const auto& [T, C, k, dx, dy, index] = op;
  std::fill(dx, dx + T * C, 0.f);
  for (int64_t i = 0; i < k; i++)
    for (int64_t c = 0; c < C; c++) dx[(int64_t)index[i * C + c] * C + c] += dy[c] / (float)k;
}

}  // namespace pstal
