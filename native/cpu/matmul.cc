// ---------------------------------------------------------------------------------------------
// matmul.cc: cache-blocked, packed, vectorised, multi-threaded sgemm (the BLIS loop order), and the
// matmul op built on it.
//
// Loops (outer to inner): jc over N by NC; pc over K by KC, packing a KC x NC block of op(B) into
// NR-wide column panels (L3); ic over M by MC, packing an MC x KC block of op(A) into MR-tall row
// panels (L2); then jr/ir call the MR x NR micro-kernel, whose B panel (KC x NR) stays in L1.
// The micro-kernel is chosen once at load time from what the CPU supports (AVX-512, AVX2+FMA,
// or portable C), so one binary (a prebuild) runs on any x86-64. Threads split C into column (or,
// for tall-thin products, row) slabs; each thread packs its own operands, so no synchronisation
// is needed inside a product.
//
// BF16 (opt-in, set_gemm_precision("bf16")): the same loops; each packed float panel is rounded to
// bfloat16 (round to nearest even) into k-pair words (bits 0-15: k = 2p, bits 16-31: k = 2p + 1, a
// zero second half for an odd depth), and the micro-kernel accumulates in float32 with vdpbf16ps
// (AVX512-BF16, detected with cpuid). Only the GEMM's operands are rounded: C, and everything else
// (weights, optimizer state, activations between ops) stays float32. PSTAL_GEMM_BF16=emulate runs an
// AVX2 micro-kernel that computes what vdpbf16ps computes (odd product, then even product, each added
// in float32), for testing on CPUs without the instruction; it is not faster than float32.
// ---------------------------------------------------------------------------------------------
#include "cpu/gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "common/error.h"
#include "ops/matmul.h"
#include "common/parallel.h"
#include "cpu/activation.h"
#include "cpu/dropout.h"
#include "cpu/scratch.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include "cpu/simd.h"
#define PSTAL_X86 1
#endif

namespace pstal {
namespace {

// Block sizes (PSTAL_GEMM_KC / PSTAL_GEMM_MC override them, for tuning): the B micro-panel
// (KC x NR floats) should sit in half of L1, the A block (MC x KC) in L2.
int64_t env_or(const char* name, int64_t dflt) {
  const char* e = std::getenv(name);
  return e && std::atoll(e) > 0 ? std::atoll(e) : dflt;
}
const int64_t KC = env_or("PSTAL_GEMM_KC", 192);  // depth of one packed block
const int64_t MC = env_or("PSTAL_GEMM_MC", 120);  // rows of A packed at a time
constexpr int64_t NC = 4096;                       // columns of B packed at a time

using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta);

// The micro-kernel reading op(A) from A itself (row stride lda): `rows` for a row-major A, `cols` for
// a transposed one. Null where the kernel has no such form (the portable one packs always).
using DirectKernel = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                              float alpha, float beta);

struct KernelInfo {
  int64_t mr, nr;
  MicroKernel ukr;
  const char* name;
  DirectKernel rows = nullptr, cols = nullptr;
};

// ---- micro-kernels: C[mr x nr] = alpha * sum_k a[k][0..mr) b[k][0..nr) + beta * C -----------------
// beta == 0 never reads C (it may hold garbage).

static void ukr_generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  constexpr int MR = 4, NR = 8;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++, a += MR, b += NR)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++)
      c[i * ldc + j] = alpha * acc[i][j] + (beta == 0.f ? 0.f : beta * c[i * ldc + j]);
}

#ifdef PSTAL_X86
// Where the micro-kernel reads op(A)(i, k) from: the packed panel (a[k * MR + i]), or, for products
// with one or two column panels (nothing to amortise packing over), A itself: row-major
// (a[i * lda + k]) or transposed (a[k * lda + i]). The arithmetic is the same in all three, so
// the same bits.
enum class ASource { Packed, Rows, Cols };

template <ASource S, int MR>
__attribute__((always_inline)) inline const float* a_at(const float* a, int64_t lda, int i) {
  if constexpr (S == ASource::Rows) return a + i * lda;
  else return a + i;
}
template <ASource S, int MR>
__attribute__((always_inline)) inline int64_t a_step(int64_t lda) {
  if constexpr (S == ASource::Packed) return MR;
  else if constexpr (S == ASource::Rows) return 1;
  else return lda;
}

// AVX2 + FMA: 6 x 16 tile, 12 ymm accumulators.
template <ASource S>
__attribute__((target("avx2,fma"))) void ukr_avx2_from(int64_t kc, const float* a, int64_t lda, const float* b,
                                                       float* c, int64_t ldc, float alpha, float beta) {
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const int64_t step = a_step<S, 6>(lda);
  for (int64_t k = 0; k < kc; k++, a += step, b += 16) {
    if constexpr (S == ASource::Cols) _mm_prefetch(reinterpret_cast<const char*>(a + 8 * step), _MM_HINT_T0);  // as below
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
      __m256 ai = _mm256_broadcast_ss(a_at<S, 6>(a, lda, i));
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++) {
    float* ci = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
    if (beta != 0.f) {
      r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
      r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
    }
    _mm256_storeu_ps(ci, r0);
    _mm256_storeu_ps(ci + 8, r1);
  }
}

// AVX-512: 8 x 32 tile, 16 zmm accumulators; two B loads and eight broadcasts per 16 FMAs.
template <ASource S>
__attribute__((target("avx512f"))) void ukr_avx512_from(int64_t kc, const float* a, int64_t lda, const float* b,
                                                        float* c, int64_t ldc, float alpha, float beta) {
  __m512 acc[8][2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const int64_t step = a_step<S, 8>(lda);
  for (int64_t k = 0; k < kc; k++, a += step, b += 32) {
    // A read in place and transposed: every depth is a new cache line, lda floats on, fetched
    // 8 depths ahead (the packed panels' sequential lines the hardware fetches by itself).
    if constexpr (S == ASource::Cols) _mm_prefetch(reinterpret_cast<const char*>(a + 8 * step), _MM_HINT_T0);
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
      __m512 ai = _mm512_set1_ps(*a_at<S, 8>(a, lda, i));
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    float* ci = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
    if (beta != 0.f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), r1);
    }
    _mm512_storeu_ps(ci, r0);
    _mm512_storeu_ps(ci + 16, r1);
  }
}

__attribute__((target("avx2,fma"))) void ukr_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                  float alpha, float beta) {
  ukr_avx2_from<ASource::Packed>(kc, a, 0, b, c, ldc, alpha, beta);
}
__attribute__((target("avx512f"))) void ukr_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                   float alpha, float beta) {
  ukr_avx512_from<ASource::Packed>(kc, a, 0, b, c, ldc, alpha, beta);
}
#endif

KernelInfo pick_kernel() {
#ifdef PSTAL_X86
  const KernelInfo avx2{6, 16, ukr_avx2, "avx2", ukr_avx2_from<ASource::Rows>, ukr_avx2_from<ASource::Cols>};
#endif
  if (const char* e = std::getenv("PSTAL_GEMM_KERNEL")) {  // for tests and benchmarks
    std::string k = e;
    if (k == "generic") return {4, 8, ukr_generic, "generic"};
#ifdef PSTAL_X86
    if (k == "avx2" && simd_avx2()) return avx2;
#endif
  }
#ifdef PSTAL_X86
  if (simd_avx512())
    return {8, 32, ukr_avx512, "avx512", ukr_avx512_from<ASource::Rows>, ukr_avx512_from<ASource::Cols>};
  if (simd_avx2()) return avx2;
#endif
  return {4, 8, ukr_generic, "generic"};
}

const KernelInfo& kernel() {
  static KernelInfo k = pick_kernel();
  return k;
}

// ---- packing --------------------------------------------------------------------------------------

// One thread's pack buffers, grown on demand and reused across calls (no allocation per product).
struct PackBuffers {
  float* a = nullptr;
  float* b = nullptr;
  size_t a_cap = 0, b_cap = 0;
  ~PackBuffers() {
    std::free(a);
    std::free(b);
  }
  // 8 floats of slack past `need`: pack_a_rows_avx2's last 8-wide store of a 6-tall panel
  static float* grow(float*& p, size_t& cap, size_t need) {
    if (need + 8 > cap) {
      std::free(p);
      cap = (need + 8 + 15) / 16 * 16;
      p = static_cast<float*>(std::aligned_alloc(64, cap * sizeof(float)));
    }
    return p;
  }
};
thread_local PackBuffers tls_pack;

#ifdef PSTAL_X86
const bool pack_avx2 = simd_avx2();

// The 8 x 8 block r[0..8) transposed in registers: afterwards r[t] holds what was column t.
__attribute__((target("avx2"), always_inline)) inline void transpose8x8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// pack_a_rows (below) by 8 x 8 transposes: MR (6 or 8) rows of 8 depths in, 8 depth rows of MR out.
// A 6-tall panel's 8-wide stores overlap: each store's last two floats are the next row's first two,
// rewritten by the next store; the last spills two floats into the next panel (packed after this
// one) or into PackBuffers' slack.
template <int MR>
__attribute__((target("avx2"))) void pack_a_rows_avx2(const float* src, int64_t lda, int64_t kc, float* o) {
  static_assert(MR == 6 || MR == 8);
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = i < MR ? _mm256_loadu_ps(src + i * lda + k) : _mm256_setzero_ps();
    transpose8x8(r);
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) _mm256_storeu_ps(o + (k + t) * MR, r[t]);
  }
  for (; k < kc; k++)
    for (int i = 0; i < MR; i++) o[k * MR + i] = src[i * lda + k];
}

// One full NR-wide panel of a transposed B (op(B)(k, j) = B[j][k]: NR row streams) by 8 x 8 transposes.
__attribute__((target("avx2"))) void pack_b_trans_avx2(const float* src, int64_t ldb, int64_t kc, int64_t nr, float* o) {
  for (int64_t c8 = 0; c8 < nr; c8 += 8) {
    const float* rows = src + c8 * ldb;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(rows + i * ldb + k);
      transpose8x8(r);
#pragma GCC unroll 8
      for (int t = 0; t < 8; t++) _mm256_storeu_ps(o + (k + t) * nr + c8, r[t]);
    }
    for (; k < kc; k++)
      for (int i = 0; i < 8; i++) o[k * nr + c8 + i] = rows[i * ldb + k];
  }
}
#endif

// One full MR-tall panel of a transposed A (contiguous along i) / NR-wide panel of a plain B
// (contiguous along j): one fixed-size copy per depth.
template <int W>
void pack_copy(const float* src, int64_t ld, int64_t kc, float* o) {
  for (int64_t k = 0; k < kc; k++, o += W) std::memcpy(o, src + k * ld, W * sizeof(float));
}

// One full MR-tall panel of a row-major (not transposed) A: MR row streams, the trip count known to
// the compiler (the generic loop below cost a quarter of the micro-kernel's time in attention's P V,
// whose A is the L x L probabilities and whose N is one head's 32 columns).
template <int MR>
void pack_a_rows(const float* src, int64_t lda, int64_t kc, float* o) {
  const float* rp[MR];
  for (int r = 0; r < MR; r++) rp[r] = src + r * lda;
  for (int64_t k = 0; k < kc; k++, o += MR)
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) o[r] = rp[r][k];
}

// A block rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) into MR-tall panels, zero padded.
void pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t mr,
            float* out) {
  for (int64_t ir = 0; ir < mc; ir += mr) {
    int64_t rows = std::min(mr, mc - ir);
    if (!trans && rows == mr && (mr == 4 || mr == 6 || mr == 8)) {
      const float* src = A + (i0 + ir) * lda + p0;
#ifdef PSTAL_X86
      if (pack_avx2 && (mr == 6 || mr == 8)) {
        if (mr == 6) pack_a_rows_avx2<6>(src, lda, kc, out);
        else pack_a_rows_avx2<8>(src, lda, kc, out);
        out += kc * mr;
        continue;
      }
#endif
      if (mr == 6) pack_a_rows<6>(src, lda, kc, out);
      else if (mr == 8) pack_a_rows<8>(src, lda, kc, out);
      else pack_a_rows<4>(src, lda, kc, out);
      out += kc * mr;
      continue;
    }
    if (trans && rows == mr && (mr == 6 || mr == 8)) {
      const float* src = A + p0 * lda + i0 + ir;
      if (mr == 6) pack_copy<6>(src, lda, kc, out);
      else pack_copy<8>(src, lda, kc, out);
      out += kc * mr;
      continue;
    }
    for (int64_t k = 0; k < kc; k++) {
      float* o = out + k * mr;
      if (trans) {  // op(A)(i, k) = A[k][i]: contiguous along i
        const float* src = A + (p0 + k) * lda + i0 + ir;
        for (int64_t r = 0; r < rows; r++) o[r] = src[r];
      } else {
        const float* src = A + (i0 + ir) * lda + p0 + k;
        for (int64_t r = 0; r < rows; r++) o[r] = src[r * lda];
      }
      for (int64_t r = rows; r < mr; r++) o[r] = 0.f;
    }
    out += kc * mr;
  }
}

// B block depth [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-wide panels, zero padded.
void pack_b(bool trans, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t nr,
            float* out) {
  for (int64_t jr = 0; jr < nc; jr += nr) {
    int64_t cols = std::min(nr, nc - jr);
    if (cols == nr && (nr == 16 || nr == 32)) {
#ifdef PSTAL_X86
      if (trans && pack_avx2) {
        pack_b_trans_avx2(B + (j0 + jr) * ldb + p0, ldb, kc, nr, out);
        out += kc * nr;
        continue;
      }
#endif
      if (!trans) {
        const float* src = B + p0 * ldb + j0 + jr;
        if (nr == 16) pack_copy<16>(src, ldb, kc, out);
        else pack_copy<32>(src, ldb, kc, out);
        out += kc * nr;
        continue;
      }
    }
    for (int64_t k = 0; k < kc; k++) {
      float* o = out + k * nr;
      if (trans) {  // op(B)(k, j) = B[j][k]
        const float* src = B + (j0 + jr) * ldb + p0 + k;
        for (int64_t c = 0; c < cols; c++) o[c] = src[c * ldb];
      } else {
        const float* src = B + (p0 + k) * ldb + j0 + jr;
        for (int64_t c = 0; c < cols; c++) o[c] = src[c];
      }
      for (int64_t c = cols; c < nr; c++) o[c] = 0.f;
    }
    out += kc * nr;
  }
}

// ---- the blocked product over one slab of C ------------------------------------------------------

// float32 operands: the kernel reads the packed panels as they are.
struct F32Format {
  int64_t mr, nr, kc_max;
  MicroKernel ukr;
  DirectKernel rows, cols;  // reading A in place (null: always pack)
  DirectKernel direct(bool trans) const { return trans ? cols : rows; }
  int64_t depth(int64_t kc) const { return kc; }
  const float* panels_a(const float* a, int64_t, int64_t) const { return a; }
  const float* panels_b(const float* b, int64_t, int64_t) const { return b; }
};

// The BLIS loops over one slab of C: NC columns of op(B), KC depths, MC rows of op(A), then MR x NR
// micro-tiles (a partial tile through an MR x NR scratch). Fmt says what the micro-kernel reads: the
// packed float panels themselves (F32Format) or those panels rounded into bf16 k-pair words
// (Bf16Format, below), and with which kernel.
template <class Fmt>
void gemm_slab_blocked(const Fmt& f, bool ta, bool tb, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K,
                       float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                       int64_t ldc) {
  const int64_t mr = f.mr, nr = f.nr;
  const int64_t mc_max = std::max<int64_t>(MC / mr, 1) * mr;
  PackBuffers& pb = tls_pack;
  float edge[32 * 32];  // MR x NR scratch for partial tiles (MR, NR <= 32)
  for (int64_t jc = n0; jc < n1; jc += NC) {
    int64_t nc = std::min(NC, n1 - jc);
    int64_t nc_pad = (nc + nr - 1) / nr * nr;
    for (int64_t pc = 0; pc < K; pc += f.kc_max) {
      int64_t kc = std::min(f.kc_max, K - pc);
      int64_t kd = f.depth(kc);  // the panels' depth in the kernel's words
      float beta_eff = pc == 0 ? beta : 1.f;
      float* bf = PackBuffers::grow(pb.b, pb.b_cap, (size_t)(kc * nc_pad));
      pack_b(tb, B, ldb, pc, kc, jc, nc, nr, bf);
      const auto* bp = f.panels_b(bf, kc, nc_pad);
      // One or two column panels (attention's products with one head's columns, the classifier's
      // few classes): each A panel would be read once or twice after packing, so the kernel reads
      // A in place; only a partial last panel (fewer than MR rows) is packed, zero padded.
      const DirectKernel direct = nc <= 2 * nr ? f.direct(ta) : nullptr;
      for (int64_t ic = m0; ic < m1; ic += mc_max) {
        int64_t mc = std::min(mc_max, m1 - ic);
        int64_t mc_pad = (mc + mr - 1) / mr * mr;
        float* af = PackBuffers::grow(pb.a, pb.a_cap, (size_t)(kc * mc_pad));
        const int64_t packed_from = direct ? mc / mr * mr : 0;  // the rows packed: all, or the partial panel
        if (packed_from < mc) pack_a(ta, A, lda, ic + packed_from, mc - packed_from, pc, kc, mr, af + packed_from * kc);
        const auto* ap = f.panels_a(af, kc, mc_pad);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          int64_t cols = std::min(nr, nc - jr);
          const auto* bpanel = bp + jr * kd;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            int64_t rows = std::min(mr, mc - ir);
            const auto* apanel = ap + ir * kd;
            float* ctile = C + (ic + ir) * ldc + jc + jr;
            // A full tile is written in place; a partial one goes through the scratch, then is added.
            const bool full = rows == mr && cols == nr;
            float* out = full ? ctile : edge;
            const int64_t ldo = full ? ldc : nr;
            const float beta_out = full ? beta_eff : 0.f;
            if (ir < packed_from) {  // a full-height panel read from A itself (F32Format only)
              if constexpr (std::is_same_v<Fmt, F32Format>)
                direct(kc, ta ? A + pc * lda + ic + ir : A + (ic + ir) * lda + pc, lda, bpanel, out, ldo, alpha,
                       beta_out);
            } else {
              f.ukr(kd, apanel, bpanel, out, ldo, alpha, beta_out);
            }
            if (!full)
              for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) {
                  float* cij = ctile + i * ldc + j;
                  *cij = edge[i * nr + j] + (beta_eff == 0.f ? 0.f : beta_eff * *cij);
                }
          }
        }
      }
    }
  }
}


void gemm_slab(bool ta, bool tb, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const KernelInfo& ki = kernel();
  gemm_slab_blocked(F32Format{ki.mr, ki.nr, KC, ki.ukr, ki.rows, ki.cols}, ta, tb, m0, m1, n0, n1, K, alpha, A, lda, B, ldb, beta, C,
                    ldc);
}

// ---- BF16: operands rounded to bfloat16, float32 accumulation -------------------------------------

// Round to nearest even; NaN stays a (quiet) NaN. The same rule as vcvtneps2bf16.
inline uint32_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// A packed float panel [kc][w] (row k = depth k) to k-pair words [ceil(kc/2)][w].
void scalar_pairs(const float* src, int64_t kc, int64_t w, uint32_t* dst) {
  for (int64_t p = 0; 2 * p < kc; p++) {
    const float* r0 = src + 2 * p * w;
    const float* r1 = 2 * p + 1 < kc ? r0 + w : nullptr;
    for (int64_t i = 0; i < w; i++) dst[p * w + i] = (r1 ? bf16_bits(r1[i]) << 16 : 0u) | bf16_bits(r0[i]);
  }
}

#ifdef PSTAL_X86
__attribute__((target("avx2"))) inline __m256i bf16_round8(__m256 x) {
  __m256i u = _mm256_castps_si256(x);
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                                    _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))));
  r = _mm256_srli_epi32(r, 16);
  __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(r, nan, is_nan);  // 16-bit values in 32-bit lanes
}

__attribute__((target("avx2"))) void avx2_pairs(const float* src, int64_t kc, int64_t w, uint32_t* dst) {
  for (int64_t p = 0; 2 * p < kc; p++) {
    const float* r0 = src + 2 * p * w;
    const float* r1 = r0 + w;
    bool odd_tail = 2 * p + 1 == kc;
    uint32_t* o = dst + p * w;
    int64_t i = 0;
    for (; i + 8 <= w; i += 8) {
      __m256i lo = bf16_round8(_mm256_loadu_ps(r0 + i));
      __m256i hi = odd_tail ? _mm256_setzero_si256() : _mm256_slli_epi32(bf16_round8(_mm256_loadu_ps(r1 + i)), 16);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + i), _mm256_or_si256(lo, hi));
    }
    for (; i < w; i++) o[i] = (odd_tail ? 0u : bf16_bits(r1[i]) << 16) | bf16_bits(r0[i]);
  }
}
#endif

void to_pairs(const float* src, int64_t kc, int64_t w, uint32_t* dst) {
#ifdef PSTAL_X86
  static const bool avx2 = simd_avx2();
  if (avx2) return avx2_pairs(src, kc, w, dst);
#endif
  scalar_pairs(src, kc, w, dst);
}

// C[mr x nr] = alpha * sum_p (a_odd b_odd + a_even b_even) + beta * C over kp k-pairs; beta == 0 never reads C.
using Bf16Kernel = void (*)(int64_t kp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, float alpha,
                            float beta);
struct Bf16KernelInfo {
  int64_t mr, nr;
  Bf16Kernel ukr;
  const char* name;
};

#ifdef PSTAL_X86
// The real one: 8 x 32 tile, 16 zmm accumulators; per k-pair two B loads, eight broadcast pair words
// and 16 vdpbf16ps (32 multiply-adds each).
__attribute__((target("avx512f,avx512bf16"))) void ukr_bf16_avx512(int64_t kp, const uint32_t* a, const uint32_t* b,
                                                                    float* c, int64_t ldc, float alpha, float beta) {
  __m512 acc[8][2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; p++, a += 8, b += 32) {
    __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
      __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    float* ci = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
    if (beta != 0.f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), r1);
    }
    _mm512_storeu_ps(ci, r0);
    _mm512_storeu_ps(ci + 16, r1);
  }
}

// The emulation (PSTAL_GEMM_BF16=emulate): 6 x 16 tile on AVX2 + FMA. A bf16 widens to float32
// exactly (its bits in the high half), and a product of two bf16 is exact in float32, so an FMA per
// product gives vdpbf16ps's sums: the odd product added first, then the even one (Intel SDM order).
__attribute__((target("avx2,fma"))) void ukr_bf16_emulated(int64_t kp, const uint32_t* a, const uint32_t* b, float* c,
                                                           int64_t ldc, float alpha, float beta) {
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
  for (int64_t p = 0; p < kp; p++, a += 6, b += 16) {
    __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 8));
    __m256 bo0 = _mm256_castsi256_ps(_mm256_and_si256(w0, hi_mask)), bo1 = _mm256_castsi256_ps(_mm256_and_si256(w1, hi_mask));
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
      __m256 ao = _mm256_castsi256_ps(_mm256_set1_epi32((int)(a[i] & 0xffff0000u)));
      acc[i][0] = _mm256_fmadd_ps(ao, bo0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ao, bo1, acc[i][1]);
    }
    __m256 be0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16)), be1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
      __m256 ae = _mm256_castsi256_ps(_mm256_set1_epi32((int)(a[i] << 16)));
      acc[i][0] = _mm256_fmadd_ps(ae, be0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ae, be1, acc[i][1]);
    }
  }
  __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++) {
    float* ci = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
    if (beta != 0.f) {
      r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
      r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
    }
    _mm256_storeu_ps(ci, r0);
    _mm256_storeu_ps(ci + 8, r1);
  }
}

// cpuid leaf 7: AVX-512F (subleaf 0, ebx bit 16), AVX512-BF16 (subleaf 1, eax bit 5); and the OS
// saves the zmm and opmask state (XCR0 bits 1, 2, 5, 6, 7).
bool cpu_has_avx512_bf16() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  if ((xlo & 0xe6u) != 0xe6u) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16))) return false;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 5)) != 0;
}
#else
bool cpu_has_avx512_bf16() { return false; }
#endif

bool bf16_emulated() {
  const char* e = std::getenv("PSTAL_GEMM_BF16");
#ifdef PSTAL_X86
  return e && std::string(e) == "emulate" && simd_avx2();
#else
  (void)e;
  return false;
#endif
}

// The BF16 micro-kernel this process can run, or null.
const Bf16KernelInfo* bf16_kernel() {
  static const Bf16KernelInfo* k = []() -> const Bf16KernelInfo* {
#ifdef PSTAL_X86
    static const Bf16KernelInfo real{8, 32, ukr_bf16_avx512, "avx512-bf16"};
    static const Bf16KernelInfo emu{6, 16, ukr_bf16_emulated, "avx2-bf16-emulated"};
    if (bf16_emulated()) return &emu;
    if (simd_avx512() && cpu_has_avx512_bf16()) return &real;
#endif
    return nullptr;
  }();
  return k;
}

// 0: float32 (the default), 1: bf16 operands. Read by every product; set between ops.
std::atomic<int> gemm_precision{0};

struct Bf16PackBuffers {
  uint32_t* a = nullptr;
  uint32_t* b = nullptr;
  size_t a_cap = 0, b_cap = 0;
  ~Bf16PackBuffers() {
    std::free(a);
    std::free(b);
  }
  static uint32_t* grow(uint32_t*& p, size_t& cap, size_t need) {
    if (need > cap) {
      std::free(p);
      cap = (need + 15) / 16 * 16;
      p = static_cast<uint32_t*>(std::aligned_alloc(64, cap * sizeof(uint32_t)));
    }
    return p;
  }
};
thread_local Bf16PackBuffers tls_pack_bf16;

const int64_t KC_BF16 = env_or("PSTAL_GEMM_KC_BF16", 384) / 2 * 2;  // depth of one block (even: whole pairs)

// bf16 operands: each packed float panel rounded into k-pair words (the kernel's depth is kc / 2).
struct Bf16Format {
  int64_t mr, nr, kc_max;
  Bf16Kernel ukr;
  DirectKernel direct(bool) const { return nullptr; }  // the operands are converted: always packed
  int64_t depth(int64_t kc) const { return (kc + 1) / 2; }
  const uint32_t* panels(const float* f, int64_t kc, int64_t extent, int64_t w, uint32_t*& buf, size_t& cap) const {
    int64_t kp = depth(kc);
    uint32_t* out = Bf16PackBuffers::grow(buf, cap, (size_t)(kp * extent));
    for (int64_t r = 0; r < extent; r += w) to_pairs(f + r * kc, kc, w, out + r * kp);
    return out;
  }
  const uint32_t* panels_a(const float* a, int64_t kc, int64_t mc_pad) const {
    return panels(a, kc, mc_pad, mr, tls_pack_bf16.a, tls_pack_bf16.a_cap);
  }
  const uint32_t* panels_b(const float* b, int64_t kc, int64_t nc_pad) const {
    return panels(b, kc, nc_pad, nr, tls_pack_bf16.b, tls_pack_bf16.b_cap);
  }
};

void gemm_slab_bf16(const Bf16KernelInfo& ki, bool ta, bool tb, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                    int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                    float* C, int64_t ldc) {
  gemm_slab_blocked(Bf16Format{ki.mr, ki.nr, std::max<int64_t>(KC_BF16, 2), ki.ukr}, ta, tb, m0, m1, n0, n1, K, alpha,
                    A, lda, B, ldb, beta, C, ldc);
}

// The slab routine for this product's precision, and its micro-tile.
struct SlabChoice {
  const Bf16KernelInfo* bf16;
  int64_t mr, nr;
};
SlabChoice slab_choice() {
  if (gemm_precision.load(std::memory_order_relaxed) == 1) {
    const Bf16KernelInfo* k = bf16_kernel();
    if (k) return {k, k->mr, k->nr};
  }
  const KernelInfo& ki = kernel();
  return {nullptr, ki.mr, ki.nr};
}

void run_slab(const SlabChoice& s, bool ta, bool tb, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K,
              float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (s.bf16) return gemm_slab_bf16(*s.bf16, ta, tb, m0, m1, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_slab(ta, tb, m0, m1, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
}

// ---- OpenBLAS: benchmarks only --------------------------------------------------------------------
// The shipped GEMM is ours alone. A build made for benchmarks/ops.ts with PSTAL_BENCH_OPENBLAS=1
// (binding.gyp then defines PSTAL_WITH_OPENBLAS) can also load OpenBLAS at run time to compare
// against it (PSTAL_GEMM=openblas or set_gemm_impl('openblas')); nothing else uses it.
#if PSTAL_WITH_OPENBLAS

using cblas_sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                                float*, int);
using set_threads_fn = void (*)(int);
struct OpenBlas {
  cblas_sgemm_fn sgemm = nullptr;
  set_threads_fn set_threads = nullptr;
  int threads = -1;
};
OpenBlas* openblas() {
  static OpenBlas ob;
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.21.so"}) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!h) continue;
      ob.sgemm = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
      ob.set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
      if (ob.sgemm) break;
    }
  });
  return ob.sgemm ? &ob : nullptr;
}

bool use_openblas = [] {
  const char* e = std::getenv("PSTAL_GEMM");
  return e && std::string(e) == "openblas" && openblas() != nullptr;
}();
#else
struct OpenBlas {
  void (*sgemm)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
  void (*set_threads)(int);
  int threads;
};
OpenBlas* openblas() { return nullptr; }
constexpr bool use_openblas = false;
#endif

}  // namespace

// ---- public entry points --------------------------------------------------------------------------

int64_t gemm_depth_block() {
  const SlabChoice s = slab_choice();
  return s.bf16 ? std::max<int64_t>(KC_BF16, 2) : KC;
}

void sgemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale_c(M, N, beta, C, ldc);
  run_slab(slab_choice(), ta, tb, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale_c(M, N, beta, C, ldc);
  const SlabChoice sc = slab_choice();
  if (use_openblas && !sc.bf16) {
    OpenBlas* ob = openblas();
    if (ob->set_threads && ob->threads != num_threads()) {
      ob->threads = num_threads();
      ob->set_threads(ob->threads);
    }
    ob->sgemm(101, ta ? 112 : 111, tb ? 112 : 111, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C,
              (int)ldc);
    return;
  }
  double flops = 2.0 * (double)M * (double)N * (double)K;
  int threads = num_threads();
  if (threads <= 1 || flops < 4e6) return run_slab(sc, ta, tb, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Split the larger side of C into slabs aligned to the micro-tile.
  bool split_n = N >= M;
  int64_t unit = split_n ? sc.nr : sc.mr;
  int64_t units = ((split_n ? N : M) + unit - 1) / unit;
  int tasks = (int)std::min<int64_t>(threads, units);
  parallel_run(tasks, [&](int t, int nt) {
    int64_t u0 = units * t / nt, u1 = units * (t + 1) / nt;
    if (split_n) {
      int64_t n0 = u0 * unit, n1 = std::min(N, u1 * unit);
      if (n0 < n1) run_slab(sc, ta, tb, 0, M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
      int64_t m0 = u0 * unit, m1 = std::min(M, u1 * unit);
      if (m0 < m1) run_slab(sc, ta, tb, m0, m1, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
  });
}

bool select_gemm_impl(const std::string& name) {
#if PSTAL_WITH_OPENBLAS
  if (name == "openblas") {
    if (!openblas()) return false;
    use_openblas = true;
    return true;
  }
  use_openblas = false;
#endif
  return name == "pstal";
}
std::string gemm_impl() { return use_openblas ? "openblas" : "pstal"; }
std::string gemm_kernel_name() {
  const SlabChoice sc = slab_choice();
  return sc.bf16 ? sc.bf16->name : kernel().name;
}
bool gemm_bf16_supported() { return bf16_kernel() != nullptr; }

// ---- ops ------------------------------------------------------------------------------------------

// matmul_forward(out, a, b, batch, M, N, K, trans_a, trans_b, a_batch_stride, b_batch_stride, beta)
//   out[bi] (M x N) = op(a[bi]) op(b[bi]) + beta * out[bi]; a batch stride of 0 broadcasts one
//   operand over the batch. Backward is two more matmuls (lib/ops/matmul.ts).
// A product added into C (matmul_forward's and linear_backward's accumulate): summed whole into
// per-thread scratch, then added element by element, the bits of a temporary and an axpy.
static thread_local Scratch acc_scratch;

static void add_into(float* y, const float* x, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) y[i] += x[i];
  });
}

void matmul_forward(const MatmulForward& op) {
  if (op.accumulate) {
    int64_t n = op.batch * op.M * op.N;
    if (n == 0) return;
    MatmulForward into = op;
    into.accumulate = false;
    into.out = acc_scratch.get((size_t)n);
    matmul_forward(into);
    return add_into(op.out, into.out, n);
  }
  const auto& [batch, M, N, K, ta, tb, sa, sb, beta, out, a, b, accumulate] = op;
  int64_t lda = ta ? M : K, ldb = tb ? K : N;
  double flops = 2.0 * (double)M * N * K;
  if (batch >= 2 && flops < 3e7 && num_threads() > 1) {
    // Many small products (attention heads): one product per task.
    parallel_for(batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t bi = b0; bi < b1; bi++)
        sgemm_serial(ta, tb, M, N, K, 1.f, a + bi * sa, lda, b + bi * sb, ldb, (float)beta, out + bi * M * N, N);
    });
  } else {
    for (int64_t bi = 0; bi < batch; bi++)
      sgemm(ta, tb, M, N, K, 1.f, a + bi * sa, lda, b + bi * sb, ldb, (float)beta, out + bi * M * N, N);
  }
}

// ---- linear: x w^T + bias (relu), and its gradients (ops/matmul.h) --------------------------------

void linear_forward(const LinearForward& a) {
  const int64_t M = a.M, N = a.N, K = a.K;
  if (M == 0 || N == 0) return;
  // the product as matmul_forward(x, w, trans_b) computes it (the same call), then the epilogue
  sgemm(false, true, M, N, K, 1.f, a.x, K, a.w, K, 0.f, a.out, N);
  if (!a.bias && !a.relu && a.p == 0.f) return;
  parallel_for(M, std::max<int64_t>(1, (1 << 14) / N), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* o = a.out + r * N;
      if (a.bias)
        for (int64_t j = 0; j < N; j++) o[j] = o[j] + a.bias[j];
      if (a.relu)
        for (int64_t j = 0; j < N; j++) o[j] = relu_f(o[j]);
      if (a.p > 0.f) apply_dropout(o, o, N, a.seed, (uint64_t)(r * N), a.p);  // the dropout op's loop
    }
  });
}

static thread_local Scratch relu_grad_scratch, bias_grad_scratch;

void linear_backward(const LinearBackward& a) {
  const int64_t M = a.M, N = a.N, K = a.K;
  const float* g = a.g;
  if ((a.y || a.p > 0.f) && M * N > 0) {
    // dropout's backward (its op's loop), then relu's (unary_backward's dy * relu'(x), from y: the
    // same mask where kept; where dropped dy is a zero that keeps its sign times either)
    float* gr = relu_grad_scratch.get((size_t)(M * N));
    parallel_for(M * N, 1 << 14, [&](int64_t s, int64_t e) {
      const float* src = a.g + s;
      if (a.p > 0.f) apply_dropout(gr + s, a.g + s, e - s, a.seed, (uint64_t)s, a.p), src = gr + s;
      if (a.y)
        for (int64_t i = s; i < e; i++) gr[i] = src[i - s] * relu_df(a.y[i]);
    });
    g = gr;
  }
  // dx = g w: matmul's backward for its first operand (trans_b = false of w^T)
  if (a.dx)
    matmul_forward(MatmulForward{1, M, K, N, false, false, 0, 0, 0.0, a.dx, g, a.w, a.acc_x});
  // dw = g^T x
  if (a.dw)
    matmul_forward(MatmulForward{1, N, K, M, true, false, 0, 0, 0.0, a.dw, g, a.x, a.acc_w});
  // db: sum_to's order (rows in turn, from zero), then added when accumulating
  if (a.db) {
    float* s = a.acc_b ? bias_grad_scratch.get((size_t)std::max<int64_t>(N, 1)) : a.db;
    for (int64_t j = 0; j < N; j++) s[j] = 0.f;
    for (int64_t r = 0; r < M; r++)
      for (int64_t j = 0; j < N; j++) s[j] += g[r * N + j];
    if (a.acc_b)
      for (int64_t j = 0; j < N; j++) a.db[j] += s[j];
  }
}

Info gemm_info() {
  Info i;
  i.str("impl", gemm_impl()).str("kernel", gemm_kernel_name()).str("simd", simd_level());
  i.flag("openblasAvailable", openblas() != nullptr).num("threads", num_threads());
  i.str("precision", gemm_precision.load() == 1 ? "bf16" : "fp32").flag("bf16Supported", gemm_bf16_supported());
  return i;
}

void set_gemm_precision(const std::string& precision) {
  if (precision == "fp32") {
    gemm_precision.store(0);
    return;
  }
  if (precision != "bf16") throw OpError("precision must be 'fp32' or 'bf16', received '" + precision + "'");
  if (!gemm_bf16_supported())
    throw OpError(
        "bf16 GEMM needs a CPU with AVX512-BF16 (vdpbf16ps: Intel Cooper Lake, Sapphire Rapids or later; AMD "
        "Zen 4 or later), and this CPU does not report it (cpuid leaf 7.1 eax bit 5, with AVX-512 state enabled "
        "by the OS); use precision 'fp32' (PSTAL_GEMM_BF16=emulate runs a slow emulation, for testing)");
  gemm_precision.store(1);
}

void set_gemm_impl(const std::string& name) {
  if (name != "pstal" && name != "openblas")
    throw OpError("impl must be 'pstal' or 'openblas', received '" + name + "'");
#if PSTAL_WITH_OPENBLAS
  if (!select_gemm_impl(name)) throw OpError("OpenBLAS (libopenblas.so.0) could not be loaded");
#else
  if (!select_gemm_impl(name))
    throw OpError("OpenBLAS is for benchmarks only: rebuild with PSTAL_BENCH_OPENBLAS=1 (npx node-gyp rebuild) to compare with it");
#endif
}

}  // namespace pstal
