// ---------------------------------------------------------------------------------------------
// norm.cc: the CPU kernels (the readable reference) of native/ops/norm.h: softmax and
// log-softmax, LayerNorm (forward saves each row's mean and 1/std for the backward, llm.c's
// layernorm habit; the RAB's norm1/norm2, SPEC §2) and row L2 normalisation, over the last axis
// of [rows, cols]. The softmax row kernels are also used by attention.cc (softmax.h).
// ---------------------------------------------------------------------------------------------
#include "ops/norm.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "cpu/softmax.h"

#if defined(__x86_64__) || defined(__i386__)
#include "cpu/simd.h"
#define PSTAL_NORM_X86 1
#endif

namespace pstal {
namespace {

// y[j] = exp(x[j] - shift) for a whole row, without libm: Cephes' expf, i.e. n = round(v log2 e) by
// the 1.5 * 2^23 trick, the remainder f = v - n ln 2 in two parts, a degree-5 polynomial for exp(f),
// and 2^n from the exponent bits; about 1 ulp on [-87, 88]. Softmax arguments are <= 0; below -87 the
// result (< 1.7e-38) is flushed to 0. Multiply-adds are fused (one rounding each: std::fma, which
// is exact in every build); the AVX2 version is the same arithmetic, operation for operation, eight
// lanes at a time (FMA3), so both give the same bits.
// Measured: the per-element libm exp (twice per element, once in double) made the softmax of
// attention 18 ns an element; the scalar form below (which GCC does not vectorize: the selects become
// branches) still took half of the attention time of a D = 256 test pass; eight lanes cut that ~6x.
inline float exp_shifted(float xj, float shift) {
  float v = xj - shift;
  bool underflow = v < -87.f;
  v = underflow ? -87.f : (v > 88.f ? 88.f : v);
  float r = std::fma(v, 1.44269504088896341f, 12582912.f) - 12582912.f;
  float f = std::fma(r, -0.693359375f, v);
  f = std::fma(r, 2.12194440e-4f, f);
  float p = 1.9875691500e-4f;
  p = std::fma(p, f, 1.3981999507e-3f);
  p = std::fma(p, f, 8.3334519073e-3f);
  p = std::fma(p, f, 4.1665795894e-2f);
  p = std::fma(p, f, 1.6666665459e-1f);
  p = std::fma(p, f, 5.0000001201e-1f);
  p = std::fma(p, f * f, f) + 1.f;
  int32_t bits = ((int32_t)r + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return underflow ? 0.f : p * scale;
}

#if PSTAL_NORM_X86
__attribute__((target("avx2,fma"))) void exp_shifted_row_avx2(float* y, const float* x, float shift, int64_t n) {
  const __m256 vshift = _mm256_set1_ps(shift), lo = _mm256_set1_ps(-87.f), hi = _mm256_set1_ps(88.f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), magic = _mm256_set1_ps(12582912.f);
  const __m256 c1 = _mm256_set1_ps(-0.693359375f), c2 = _mm256_set1_ps(2.12194440e-4f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + j), vshift);
    __m256 underflow = _mm256_cmp_ps(v, lo, _CMP_LT_OQ);
    v = _mm256_blendv_ps(_mm256_blendv_ps(v, hi, _mm256_cmp_ps(v, hi, _CMP_GT_OQ)), lo, underflow);
    __m256 r = _mm256_sub_ps(_mm256_fmadd_ps(v, log2e, magic), magic);
    __m256 f = _mm256_fmadd_ps(r, c1, v);
    f = _mm256_fmadd_ps(r, c2, f);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(f, f), f), _mm256_set1_ps(1.f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(r), _mm256_set1_epi32(127)), 23);
    __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    _mm256_storeu_ps(y + j, _mm256_blendv_ps(e, _mm256_setzero_ps(), underflow));
  }
  for (; j < n; j++) y[j] = exp_shifted(x[j], shift);
}

// max over a row with the scalar loop's rule (m = x > m ? x : m: NaNs are skipped)
__attribute__((target("avx2"))) float row_max_avx2(const float* x, int64_t n) {
  __m256 m8 = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) m8 = _mm256_max_ps(_mm256_loadu_ps(x + j), m8);  // (a > b ? a : b)
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m8);
  float m = -INFINITY;
  for (int i = 0; i < 8; i++) m = lanes[i] > m ? lanes[i] : m;
  for (; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}
// exp_shifted_row_avx2 sixteen lanes at a time (the same operations; the last n % 16 by it).
__attribute__((target("avx512f"))) void exp_shifted_row_avx512(float* y, const float* x, float shift, int64_t n) {
  const __m512 vshift = _mm512_set1_ps(shift), lo = _mm512_set1_ps(-87.f), hi = _mm512_set1_ps(88.f);
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), magic = _mm512_set1_ps(12582912.f);
  const __m512 c1 = _mm512_set1_ps(-0.693359375f), c2 = _mm512_set1_ps(2.12194440e-4f);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 v = _mm512_sub_ps(_mm512_loadu_ps(x + j), vshift);
    __mmask16 underflow = _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ);
    v = _mm512_mask_blend_ps(underflow, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ), v, hi), lo);
    __m512 r = _mm512_sub_ps(_mm512_fmadd_ps(v, log2e, magic), magic);
    __m512 f = _mm512_fmadd_ps(r, c1, v);
    f = _mm512_fmadd_ps(r, c2, f);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(f, f), f), _mm512_set1_ps(1.f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(r), _mm512_set1_epi32(127)), 23);
    __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    _mm512_storeu_ps(y + j, _mm512_maskz_mov_ps((__mmask16)~underflow, e));
  }
  exp_shifted_row_avx2(y + j, x + j, shift, n - j);
}

// row_max_avx2's rule, sixteen lanes (a maximum's value does not depend on the order; only the
// sign of a zero maximum could, and exp(x - 0) = exp(x + 0))
__attribute__((target("avx512f"))) float row_max_avx512(const float* x, int64_t n) {
  __m512 m16 = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) m16 = _mm512_max_ps(_mm512_loadu_ps(x + j), m16);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, m16);
  float m = -INFINITY;
  for (int i = 0; i < 16; i++) m = lanes[i] > m ? lanes[i] : m;
  for (; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}
const bool has_avx2 = simd_avx2();
const bool has_avx512 = simd_avx512();
#endif

void exp_shifted_row(float* y, const float* x, float shift, int64_t n) {
#if PSTAL_NORM_X86
  if (has_avx512) return exp_shifted_row_avx512(y, x, shift, n);
  if (has_avx2) return exp_shifted_row_avx2(y, x, shift, n);
#endif
  for (int64_t j = 0; j < n; j++) y[j] = exp_shifted(x[j], shift);
}

float row_max(const float* x, int64_t n) {
#if PSTAL_NORM_X86
  if (has_avx512) return row_max_avx512(x, n);
  if (has_avx2) return row_max_avx2(x, n);
#endif
  float m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
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

// y *= s over a row (the softmax's normalisation; vectorized in every build)
__attribute__((target_clones("avx512f", "avx2", "default"))) void scale_row(float* y, int64_t n, float s) {
  for (int64_t j = 0; j < n; j++) y[j] *= s;
}

float softmax_row_exp(float* y, const float* x, int64_t n) {
  exp_shifted_row(y, x, row_max(x, n), n);
  return (float)(1.0 / sum_row(y, n));
}

// y may alias x.
void softmax_row(float* y, const float* x, int64_t n, bool log) {
  if (log) {
    float m = row_max(x, n);
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
    scale_row(y, n, softmax_row_exp(y, x, n));
  }
}

#if PSTAL_NORM_X86
// sum_row of four rows at once, each bit for bit: lane k of a row's vector is its accumulator s_k.
// One row's sum is a chain of additions (~1 element a cycle); four rows' chains side by side fill
// the adders.
__attribute__((target("avx2"))) void sum_rows4_avx2(const float* y, int64_t n, int64_t ld, double* out) {
  __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (int r = 0; r < 4; r++) acc[r] = _mm256_add_pd(acc[r], _mm256_cvtps_pd(_mm_loadu_ps(y + r * ld + j)));
  for (int r = 0; r < 4; r++) {
    alignas(32) double s[4];
    _mm256_store_pd(s, acc[r]);
    for (int64_t k = j; k < n; k++) s[0] += y[r * ld + k];
    out[r] = (s[0] + s[1]) + (s[2] + s[3]);
  }
}
#endif

}  // namespace

void softmax_rows_exp(float* y, int64_t rows, int64_t n, float* inv) {
  int64_t r = 0;
#if PSTAL_NORM_X86
  if (has_avx2)
    for (; r + 4 <= rows; r += 4) {
      for (int64_t i = r; i < r + 4; i++) exp_shifted_row(y + i * n, y + i * n, row_max(y + i * n, n), n);
      double s[4];
      sum_rows4_avx2(y + r * n, n, n, s);
      for (int i = 0; i < 4; i++) inv[r + i] = (float)(1.0 / s[i]);
    }
#endif
  for (; r < rows; r++) inv[r] = softmax_row_exp(y + r * n, y + r * n, n);
}

void softmax_rows(float* y, int64_t rows, int64_t n, float* inv) {
  softmax_rows_exp(y, rows, n, inv);
  for (int64_t r = 0; r < rows; r++) scale_row(y + r * n, n, inv[r]);
}

namespace {

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

}  // namespace

// softmax_forward(out, x, rows, cols, log)
void softmax_forward(const SoftmaxForward& op) {
  const auto& [rows, cols, log, y, x] = op;
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_row(y + r * cols, x + r * cols, cols, log);
  });
}

// softmax_backward(dx, dy, y, rows, cols, log): y is the forward output
void softmax_backward(const SoftmaxBackward& op) {
  const auto& [rows, cols, log, dx, dy, y] = op;
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_row_backward(dx + r * cols, dy + r * cols, y + r * cols, cols, log);
  });
}

// Row sums in double over eight interleaved accumulators (element j into accumulator j % 8, then
// a fixed tree): one serial chain of double additions, ~4 cycles each, was most of LayerNorm's time
// (165 us a [262 x 256] forward); eight chains fill the AVX2 lanes.
template <class F>
__attribute__((always_inline)) inline double sum8(int64_t n, F term) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) a[k] += term(j + k);
  for (int k = 0; j < n; j++, k++) a[k] += term(j);
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

__attribute__((target_clones("avx2", "default"))) void layernorm_row(float* o, float* mean, float* rstd, const float* xr, const float* w,
                                                                    const float* b, int64_t cols, float eps) {
  double m = sum8(cols, [&](int64_t j) { return (double)xr[j]; }) / cols;
  double v = sum8(cols, [&](int64_t j) { return ((double)xr[j] - m) * ((double)xr[j] - m); });
  float rs = (float)(1.0 / std::sqrt(v / cols + eps));
  float mf = (float)m;
  for (int64_t j = 0; j < cols; j++) o[j] = (xr[j] - mf) * rs * w[j] + b[j];
  *mean = mf;
  *rstd = rs;
}

// layernorm_forward(out, mean, rstd, x, weight, bias, rows, cols, eps)
void layernorm_forward(const LayernormForward& op) {
  const auto& [rows, cols, eps, out, mean, rstd, x, w, b] = op;
  parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) layernorm_row(out + r * cols, mean + r, rstd + r, x + r * cols, w, b, cols, eps);
  });
}

// One row of the backward: dx, and the row's terms of dweight, dbias added to dwp, dbp.
__attribute__((target_clones("avx2", "default"))) void layernorm_backward_row(float* dxr, double* dwp, double* dbp, const float* dyr,
                                                                             const float* xr, const float* w, float m, float rs,
                                                                             int64_t cols) {
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
  double sg = sum8(cols, [&](int64_t j) { return (double)(dyr[j] * w[j]); });
  double sgx = sum8(cols, [&](int64_t j) { return (double)(dyr[j] * w[j]) * (double)((xr[j] - m) * rs); });
  for (int64_t j = 0; j < cols; j++) {
    float xhat = (xr[j] - m) * rs;
    dwp[j] += (double)dyr[j] * xhat;
    dbp[j] += dyr[j];
  }
  float mg = (float)(sg / cols), mgx = (float)(sgx / cols);
  for (int64_t j = 0; j < cols; j++) {
    float xhat = (xr[j] - m) * rs;
    dxr[j] = rs * (dyr[j] * w[j] - mg - xhat * mgx);
  }
}

// layernorm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight, rows, cols)
void layernorm_backward(const LayernormBackward& op) {
  const auto& [rows, cols, dx, dw, db, dy, x, mean, rstd, w, accumulate] = op;
  int nt = num_threads();
  std::vector<double> dw_part((size_t)(nt * cols), 0.0), db_part((size_t)(nt * cols), 0.0);
  parallel_run(nt, [&](int t, int tasks) {
    int64_t r0 = rows * t / tasks, r1 = rows * (t + 1) / tasks;
    double* dwp = dw_part.data() + t * cols;
    double* dbp = db_part.data() + t * cols;
    for (int64_t r = r0; r < r1; r++)
      layernorm_backward_row(dx + r * cols, dwp, dbp, dy + r * cols, x + r * cols, w, mean[r], rstd[r], cols);
  });
  for (int64_t j = 0; j < cols; j++) {
    double a = 0, b = 0;
    for (int t = 0; t < nt; t++) a += dw_part[t * cols + j], b += db_part[t * cols + j];
    dw[j] = accumulate ? dw[j] + (float)a : (float)a;
    db[j] = accumulate ? db[j] + (float)b : (float)b;
  }
}

// l2norm_forward(out, norm, x, rows, cols, eps): out = x / max(||x||, eps) per row
void l2norm_forward(const L2normForward& op) {
  const auto& [rows, cols, eps, out, norm, x] = op;
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
}

// l2norm_backward(dx, dy, x, norm, rows, cols, eps)
void l2norm_backward(const L2normBackward& op) {
  const auto& [rows, cols, eps, dx, dy, x, norm] = op;
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
}

}  // namespace pstal
