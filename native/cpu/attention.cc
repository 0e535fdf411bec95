// ---------------------------------------------------------------------------------------------
// attention.cc: multi-head scaled-dot-product attention over all Lk tokens (no mask), the core of
// the Reliability-aware Attention Block (SPEC §2 step 2). Inputs are the already in-projected
// q [Lq, D], k, v [Lk, D]: the first Lq <= Lk tokens' queries (the last RAB needs only the
// snippets' rows, not the prototype tokens' after them). Head h is the column block
// [h*dh, (h+1)*dh), addressed with GEMM row strides, so no head split/merge copies are made. Heads
// run in parallel, one thread each. Everything is as for Lq = Lk restricted to the first Lq rows,
// bit for bit: the query blocks and the dropout mask's element numbers come from Lk.
//
//   P_h = softmax(Q_h K_h^T / sqrt(dh)),  O_h = dropout(P_h) V_h
//
// The forward saves P [H, Lq, Lk], its dropped elements negated: the backward reads the dropout mask
// from the signs (one hash per element in all, not two).
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>  // sysconf: the L2 size
#endif

#include "common/parallel.h"
#include "cpu/dropout.h"
#include "cpu/gemm.h"
#include "cpu/scratch.h"
#include "cpu/softmax.h"
#include "ops/attention.h"

#if defined(__x86_64__) || defined(__i386__)
#include "cpu/simd.h"
#define PSTAL_ATTENTION_X86 1
#endif

namespace pstal {
namespace {

thread_local Scratch drop_scratch, grad_scratch, score_scratch, inv_scratch;

// Query rows a block: the block's scores (and its dropped copy) are still in cache (L2/L3) from
// the Q K^T product through the softmax and the dropout to the P V product, instead of four
// passes over an L x L matrix from memory (100 MB a head for THUMOS14's longest test video). A
// multiple of the GEMM's depth block, so that the backward's sums over query rows keep their order
// (the same bits as one block), and large enough that re-packing K and V per block stays cheap.
// The budget (floats of one block's scores) is a sixteenth of this core's L2, so that the scores and
// their dropped copy take half of it: 131,072 floats for a 2 MiB L2, where the former fixed 4 MiB
// (a whole head up to L ~ 1,000) ran the softmax and the dropout from L3; a D = 256 training step
// took 5.4 % less time (docs/performance-history.md). Blocks never go below the depth block.
// PSTAL_ATTENTION_BLOCK sets the float count.
int64_t query_block(int64_t L) {
  static const int64_t budget = [] {
    if (const char* e = std::getenv("PSTAL_ATTENTION_BLOCK")) return (int64_t)std::atoll(e);
    long l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return l2 > 0 ? (int64_t)l2 / 16 : (int64_t)1 << 17;
  }();
  const int64_t kc = gemm_depth_block();
  return std::min(L, std::max<int64_t>(1, (budget / std::max<int64_t>(L, 1)) / kc) * kc);
}

// ---- the backward's row pass -----------------------------------------------------------------
// The forward saves P with its dropped elements negated (apply_dropout_mark; P >= 0, so the sign
// bit is free): the backward reads the mask back instead of hashing every element again. For each
// row, with m_j = 0 where P_j was dropped and 1 / (1 - p) elsewhere (1 without dropout):
//   dPm_j = dP_j * m_j,  s = sum_j (double)dPm_j * P_j  (in j order),  dS_j = P_j (dPm_j - (float)s)
// i.e. `dP *= mask` and softmax_row_backward (norm.cc), operation for operation: the same bits.
// The sum is one chain of double additions per row (its order is the result's), so the AVX2
// version runs four rows' chains side by side: a 4 x 4 transpose puts row r in lane r.

inline float dropped_keep(float p_signed, float keep) { return std::signbit(p_signed) ? 0.f : keep; }

// pd = P * mask from the signed P: 0 where dropped, P * keep elsewhere (the forward's Pd, bit for bit).
__attribute__((target_clones("avx512f", "avx2", "default"))) void unmark_dropout(float* __restrict pd, const float* __restrict P,
                                                                     int64_t n, float keep) {
  for (int64_t i = 0; i < n; i++) {  // bit operations, no select: GCC vectorizes this form
    float x = P[i] * keep;
    uint32_t xb, pb;
    std::memcpy(&xb, &x, sizeof xb);
    std::memcpy(&pb, P + i, sizeof pb);
    xb &= ~(uint32_t)((int32_t)pb >> 31);  // +0 where the sign bit marks a dropped element
    std::memcpy(pd + i, &xb, sizeof xb);
  }
}

void softmax_dropout_backward_rows_generic(float* dP, const float* P, int64_t rows, int64_t L, float keep) {
  for (int64_t r = 0; r < rows; r++) {
    float* d = dP + r * L;
    const float* pr = P + r * L;
    double s = 0;
    for (int64_t j = 0; j < L; j++) {
      d[j] *= dropped_keep(pr[j], keep);
      s += (double)d[j] * std::fabs(pr[j]);
    }
    float sf = (float)s;
    for (int64_t j = 0; j < L; j++) d[j] = std::fabs(pr[j]) * (d[j] - sf);
  }
}

#if PSTAL_ATTENTION_X86
// Four rows' chains side by side. The terms (double)dPm_j * P_j are exact products, so they are
// formed in each row's own layout and only the doubles are transposed (4 x 4): lane r of each
// column vector is row r's next term, added in j order as above (the same bits).
__attribute__((target("avx2"))) void softmax_dropout_backward_rows_avx2(float* dP, const float* P, int64_t rows,
                                                                        int64_t L, float keep) {
  const __m128 sign = _mm_set1_ps(-0.f), keep4 = _mm_set1_ps(keep);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    float* d[4] = {dP + r * L, dP + (r + 1) * L, dP + (r + 2) * L, dP + (r + 3) * L};
    const float* pr[4] = {P + r * L, P + (r + 1) * L, P + (r + 2) * L, P + (r + 3) * L};
    __m256d acc = _mm256_setzero_pd();  // lane i: row r + i's sum
    int64_t j = 0;
    for (; j + 4 <= L; j += 4) {
      __m256d t[4];
      for (int i = 0; i < 4; i++) {
        __m128 ps = _mm_loadu_ps(pr[i] + j);
        __m128 dropped = _mm_castsi128_ps(_mm_srai_epi32(_mm_castps_si128(ps), 31));
        __m128 dm = _mm_mul_ps(_mm_loadu_ps(d[i] + j), _mm_andnot_ps(dropped, keep4));
        _mm_storeu_ps(d[i] + j, dm);
        t[i] = _mm256_mul_pd(_mm256_cvtps_pd(dm), _mm256_cvtps_pd(_mm_andnot_ps(sign, ps)));
      }
      __m256d u0 = _mm256_unpacklo_pd(t[0], t[1]), u1 = _mm256_unpackhi_pd(t[0], t[1]);
      __m256d u2 = _mm256_unpacklo_pd(t[2], t[3]), u3 = _mm256_unpackhi_pd(t[2], t[3]);
      acc = _mm256_add_pd(acc, _mm256_permute2f128_pd(u0, u2, 0x20));  // column j
      acc = _mm256_add_pd(acc, _mm256_permute2f128_pd(u1, u3, 0x20));  // j + 1
      acc = _mm256_add_pd(acc, _mm256_permute2f128_pd(u0, u2, 0x31));  // j + 2
      acc = _mm256_add_pd(acc, _mm256_permute2f128_pd(u1, u3, 0x31));  // j + 3
    }
    alignas(32) double s[4];
    _mm256_store_pd(s, acc);
    for (int i = 0; i < 4; i++) {
      for (int64_t jj = j; jj < L; jj++) {  // the row's last L % 4 terms, continuing its chain
        d[i][jj] *= dropped_keep(pr[i][jj], keep);
        s[i] += (double)d[i][jj] * std::fabs(pr[i][jj]);
      }
      const __m256 sf = _mm256_set1_ps((float)s[i]), sign8 = _mm256_set1_ps(-0.f);
      int64_t k = 0;
      for (; k + 8 <= L; k += 8) {
        __m256 a = _mm256_andnot_ps(sign8, _mm256_loadu_ps(pr[i] + k));
        _mm256_storeu_ps(d[i] + k, _mm256_mul_ps(a, _mm256_sub_ps(_mm256_loadu_ps(d[i] + k), sf)));
      }
      for (; k < L; k++) d[i][k] = std::fabs(pr[i][k]) * (d[i][k] - (float)s[i]);
    }
  }
  softmax_dropout_backward_rows_generic(dP + r * L, P + r * L, rows - r, L, keep);
}
const bool has_avx2 = simd_avx2();

// The 8 x 8 doubles r[0..8) transposed in registers: afterwards r[t] holds what was column t.
__attribute__((target("avx512f"), always_inline)) inline void transpose8x8_pd(__m512d r[8]) {
  __m512d t[8];
  for (int i = 0; i < 8; i += 2) {  // pairs of rows, element pairs interleaved
    t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
  }
  __m512d u[8];
  for (int i = 0; i < 8; i += 4)  // 128-bit lanes of row pairs (i, i + 2)
    for (int h = 0; h < 2; h++) {
      u[i + h] = _mm512_shuffle_f64x2(t[i + h], t[i + 2 + h], _MM_SHUFFLE(2, 0, 2, 0));
      u[i + 2 + h] = _mm512_shuffle_f64x2(t[i + h], t[i + 2 + h], _MM_SHUFFLE(3, 1, 3, 1));
    }
  for (int h = 0; h < 4; h++) {
    r[h] = _mm512_shuffle_f64x2(u[h], u[h + 4], _MM_SHUFFLE(2, 0, 2, 0));
    r[h + 4] = _mm512_shuffle_f64x2(u[h], u[h + 4], _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// Eight rows' chains side by side. The terms (double)dPm_j * P_j are exact products, so they are
// formed in row layout (no float shuffles) and only the doubles are transposed: lane r of each
// column vector is row r's next term, added in j order as above (the same bits).
__attribute__((target("avx512f"))) void softmax_dropout_backward_rows_avx512(float* dP, const float* P, int64_t rows,
                                                                            int64_t L, float keep) {
  const __m256 keep8 = _mm256_set1_ps(keep);
  const __m256i zero = _mm256_setzero_si256();
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    __m512d acc = _mm512_setzero_pd();  // lane i: row r + i's sum
    int64_t j = 0;
    for (; j + 8 <= L; j += 8) {
      __m512d t[8];
      for (int i = 0; i < 8; i++) {
        const float* pr = P + (r + i) * L + j;
        float* d = dP + (r + i) * L + j;
        __m256i pb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pr));
        __m256 a = _mm256_castsi256_ps(_mm256_and_si256(pb, _mm256_set1_epi32(0x7fffffff)));
        __m256 dropped = _mm256_castsi256_ps(_mm256_cmpgt_epi32(zero, pb));  // sign bit set
        __m256 dm = _mm256_mul_ps(_mm256_loadu_ps(d), _mm256_andnot_ps(dropped, keep8));
        _mm256_storeu_ps(d, dm);
        t[i] = _mm512_mul_pd(_mm512_cvtps_pd(dm), _mm512_cvtps_pd(a));
      }
      transpose8x8_pd(t);
      for (int c = 0; c < 8; c++) acc = _mm512_add_pd(acc, t[c]);
    }
    alignas(64) double s[8];
    _mm512_store_pd(s, acc);
    for (int i = 0; i < 8; i++) {
      float* d = dP + (r + i) * L;
      const float* pr = P + (r + i) * L;
      for (int64_t jj = j; jj < L; jj++) {  // the row's last L % 8 terms, continuing its chain
        d[jj] *= dropped_keep(pr[jj], keep);
        s[i] += (double)d[jj] * std::fabs(pr[jj]);
      }
      const __m512 sf = _mm512_set1_ps((float)s[i]);
      int64_t k = 0;
      for (; k + 16 <= L; k += 16) {
        __m512 a = _mm512_abs_ps(_mm512_loadu_ps(pr + k));
        _mm512_storeu_ps(d + k, _mm512_mul_ps(a, _mm512_sub_ps(_mm512_loadu_ps(d + k), sf)));
      }
      for (; k < L; k++) d[k] = std::fabs(pr[k]) * (d[k] - (float)s[i]);
    }
  }
  softmax_dropout_backward_rows_avx2(dP + r * L, P + r * L, rows - r, L, keep);
}
const bool has_avx512 = simd_avx512();
#endif

void softmax_dropout_backward_rows(float* dP, const float* P, int64_t rows, int64_t L, float keep) {
#if PSTAL_ATTENTION_X86
  if (has_avx512) return softmax_dropout_backward_rows_avx512(dP, P, rows, L, keep);
  if (has_avx2) return softmax_dropout_backward_rows_avx2(dP, P, rows, L, keep);
#endif
  softmax_dropout_backward_rows_generic(dP, P, rows, L, keep);
}

}  // namespace

// attention_forward(out, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed). probs may be null when
// no gradient is needed (inference): each block's scores then live in a per-thread scratch, and
// the [H, Lq, Lk] buffer (27 MB for an 900-snippet video) is neither allocated nor written.
void attention_forward(const AttentionForward& op) {
  const auto& [Lq, Lk, D, H, p, seed, out, probs, q, k, v] = op;
  const int64_t L = Lk;  // a row's length
  int64_t dh = D / H;
  float scale = 1.f / std::sqrt((float)dh);
  int64_t rb = query_block(L);
  parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      for (int64_t i0 = 0; i0 < Lq; i0 += rb) {
        int64_t rows = std::min(rb, Lq - i0);
        float* S = probs ? probs + (h * Lq + i0) * L : score_scratch.get((size_t)(rb * L));
        sgemm_serial(false, true, rows, L, dh, scale, q + i0 * D + h * dh, D, k + h * dh, D, 0.f, S, L);
        const float* Sd = S;
        if (p > 0 && probs) {
          // the softmax's normalisation and the dropout in one pass; the dropped ones are marked in
          // P by their sign. The same mask bits as the whole head's: element (i, j) of head h is
          // number h L^2 + i L + j.
          float* sd = drop_scratch.get((size_t)(rb * L));
          float* inv = inv_scratch.get((size_t)rb);
          softmax_rows_exp(S, rows, L, inv);
          for (int64_t i = 0; i < rows; i++)
            apply_dropout_mark(sd + i * L, S + i * L, L, inv[i], seed, (uint64_t)((h * L + i0 + i) * L), (float)p);
          Sd = sd;
        } else {
          softmax_rows(S, rows, L, inv_scratch.get((size_t)rb));
          if (p > 0) {
            float* sd = drop_scratch.get((size_t)(rb * L));
            apply_dropout(sd, S, rows * L, seed, (uint64_t)(h * L + i0) * L, (float)p);
            Sd = sd;
          }
        }
        sgemm_serial(false, false, rows, dh, L, 1.f, Sd, L, v + h * dh, D, 0.f, out + i0 * D + h * dh, D);
      }
    }
  });
}

// attention_backward(dq, dk, dv, dout, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed), in blocks
// of query rows as the forward. dV = Pd^T dO and dK = dS^T Q sum over the query rows, so each block
// adds its share (beta = 1 after the first); a block a multiple of the GEMM's depth block keeps
// the additions in the one-block order, hence the same bits.
void attention_backward(const AttentionBackward& op) {
  const auto& [Lq, Lk, D, H, p, seed, dq, dk, dv, dout, probs, q, k, v] = op;
  const int64_t L = Lk;  // a row's length
  int64_t dh = D / H;
  float scale = 1.f / std::sqrt((float)dh);
  const int64_t rb = query_block(L);
  const float keep = p > 0 ? 1.f / (1.f - (float)p) : 1.f;
  parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      for (int64_t i0 = 0; i0 < Lq; i0 += rb) {
        int64_t rows = std::min(rb, Lq - i0);
        const float* P = probs + (h * Lq + i0) * L;
        const float* dO = dout + i0 * D + h * dh;
        float beta = i0 == 0 ? 0.f : 1.f;
        // Pd = P * mask, the mask read from P's signs
        const float* Pd = P;
        if (p > 0) {
          float* pd = drop_scratch.get((size_t)(rb * L));
          unmark_dropout(pd, P, rows * L, keep);
          Pd = pd;
        }
        // dV += Pd^T dO
        sgemm_serial(true, false, L, dh, rows, 1.f, Pd, L, dO, D, beta, dv + h * dh, D);
        // dPd = dO V^T, then through the mask and the softmax
        float* dP = grad_scratch.get((size_t)(rb * L));
        sgemm_serial(false, true, rows, L, dh, 1.f, dO, D, v + h * dh, D, 0.f, dP, L);
        softmax_dropout_backward_rows(dP, P, rows, L, keep);
        // dQ = dS K * scale (this block's rows), dK += dS^T Q * scale
        sgemm_serial(false, false, rows, dh, L, scale, dP, L, k + h * dh, D, 0.f, dq + i0 * D + h * dh, D);
        sgemm_serial(true, false, L, dh, rows, scale, dP, L, q + i0 * D + h * dh, D, beta, dk + h * dh, D);
      }
    }
  });
}

}  // namespace pstal
