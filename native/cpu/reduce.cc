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

#if defined(__x86_64__) || defined(__i386__)
#include "cpu/simd.h"
#define PSTAL_REDUCE_X86 1
#endif

namespace pstal {
namespace {

// Max over len rows of inner values, and the row of each maximum: out[j] = x[0][j], then for
// l = 1.. a value strictly greater (NaN never is) replaces it and records l, so the first of equal
// maxima wins. The comparison picks with masks, not branches: as branches (GCC's code for the
// plain loop) it cost 2.4 ns an element in TSPNet's RoI max pooling, mispredicted on random data.
// (`width` columns of rows `stride` apart: all of them, or the AVX2 loop's last inner % 8.)
void max_rows_generic(float* out, float* arg, const float* x, int64_t len, int64_t width, int64_t stride) {
  for (int64_t j = 0; j < width; j++) out[j] = x[j], arg[j] = 0.f;
  for (int64_t l = 1; l < len; l++)
    for (int64_t j = 0; j < width; j++)
      if (x[l * stride + j] > out[j]) out[j] = x[l * stride + j], arg[j] = (float)l;
}

#if PSTAL_REDUCE_X86
__attribute__((target("avx2"))) void max_rows_avx2(float* out, float* arg, const float* x, int64_t len, int64_t inner) {
  int64_t j = 0;
  for (; j + 8 <= inner; j += 8) {
    __m256 m = _mm256_loadu_ps(x + j), a = _mm256_setzero_ps();
    for (int64_t l = 1; l < len; l++) {
      __m256 v = _mm256_loadu_ps(x + l * inner + j);
      __m256 gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);  // ordered: false where either is NaN
      m = _mm256_blendv_ps(m, v, gt);
      a = _mm256_blendv_ps(a, _mm256_set1_ps((float)l), gt);
    }
    _mm256_storeu_ps(out + j, m);
    _mm256_storeu_ps(arg + j, a);
  }
  max_rows_generic(out + j, arg + j, x + j, len, inner - j, inner);
}
const bool has_avx2 = simd_avx2();
#endif

void max_rows(float* out, float* arg, const float* x, int64_t len, int64_t inner) {
#if PSTAL_REDUCE_X86
  if (has_avx2) return max_rows_avx2(out, arg, x, len, inner);
#endif
  max_rows_generic(out, arg, x, len, inner, inner);
}

}  // namespace


// reduce_forward(kind, out, argmax, x, outer, len, inner[, axis_len, start]): argmax (a buffer of
// [outer, inner] indices stored as floats) is written for MAX only and may be null otherwise.
void reduce_forward(const ReduceForward& op) {
  const auto& [kind, outer, len, inner, out, arg, x, x_stride] = op;
  parallel_for(outer, 1, [&](int64_t o0, int64_t o1) {
    std::vector<double> acc((size_t)inner);
    for (int64_t o = o0; o < o1; o++) {
      const float* xo = x + o * x_stride;
      float* out_o = out + o * inner;
      if (kind == MAX) {
        max_rows(out_o, arg + o * inner, xo, len, inner);
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
