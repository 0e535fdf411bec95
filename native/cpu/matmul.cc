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
// ---------------------------------------------------------------------------------------------
#include "cpu/gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/error.h"
#include "ops/matmul.h"
#include "common/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
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

struct KernelInfo {
  int64_t mr, nr;
  MicroKernel ukr;
  const char* name;
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
// AVX2 + FMA: 6 x 16 tile, 12 ymm accumulators.
__attribute__((target("avx2,fma"))) static void ukr_avx2(int64_t kc, const float* a, const float* b, float* c,
                                                         int64_t ldc, float alpha, float beta) {
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++, a += 6, b += 16) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
      __m256 ai = _mm256_broadcast_ss(a + i);
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
__attribute__((target("avx512f"))) static void ukr_avx512(int64_t kc, const float* a, const float* b, float* c,
                                                          int64_t ldc, float alpha, float beta) {
  __m512 acc[8][2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++, a += 8, b += 32) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
      __m512 ai = _mm512_set1_ps(a[i]);
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
#endif

KernelInfo pick_kernel() {
  if (const char* e = std::getenv("PSTAL_GEMM_KERNEL")) {  // for tests and benchmarks
    std::string k = e;
    if (k == "generic") return {4, 8, ukr_generic, "generic"};
#ifdef PSTAL_X86
    if (k == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {6, 16, ukr_avx2, "avx2"};
#endif
  }
#ifdef PSTAL_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {8, 32, ukr_avx512, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {6, 16, ukr_avx2, "avx2"};
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
  static float* grow(float*& p, size_t& cap, size_t need) {
    if (need > cap) {
      std::free(p);
      cap = (need + 15) / 16 * 16;
      p = static_cast<float*>(std::aligned_alloc(64, cap * sizeof(float)));
    }
    return p;
  }
};
thread_local PackBuffers tls_pack;

// A block rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) into MR-tall panels, zero padded.
void pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t mr,
            float* out) {
  for (int64_t ir = 0; ir < mc; ir += mr) {
    int64_t rows = std::min(mr, mc - ir);
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

void gemm_slab(bool ta, bool tb, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const KernelInfo& ki = kernel();
  const int64_t mr = ki.mr, nr = ki.nr;
  const int64_t mc_max = MC / mr * mr;
  PackBuffers& pb = tls_pack;
  float edge[32 * 32];  // MR x NR scratch for partial tiles (MR, NR <= 32)
  for (int64_t jc = n0; jc < n1; jc += NC) {
    int64_t nc = std::min(NC, n1 - jc);
    int64_t nc_pad = (nc + nr - 1) / nr * nr;
    for (int64_t pc = 0; pc < K; pc += KC) {
      int64_t kc = std::min(KC, K - pc);
      float beta_eff = pc == 0 ? beta : 1.f;
      float* bp = PackBuffers::grow(pb.b, pb.b_cap, (size_t)(kc * nc_pad));
      pack_b(tb, B, ldb, pc, kc, jc, nc, nr, bp);
      for (int64_t ic = m0; ic < m1; ic += mc_max) {
        int64_t mc = std::min(mc_max, m1 - ic);
        int64_t mc_pad = (mc + mr - 1) / mr * mr;
        float* ap = PackBuffers::grow(pb.a, pb.a_cap, (size_t)(kc * mc_pad));
        pack_a(ta, A, lda, ic, mc, pc, kc, mr, ap);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          int64_t cols = std::min(nr, nc - jr);
          const float* bpanel = bp + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            int64_t rows = std::min(mr, mc - ir);
            const float* apanel = ap + ir * kc;
            float* ctile = C + (ic + ir) * ldc + jc + jr;
            if (rows == mr && cols == nr) {
              ki.ukr(kc, apanel, bpanel, ctile, ldc, alpha, beta_eff);
            } else {
              ki.ukr(kc, apanel, bpanel, edge, nr, alpha, 0.f);
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

void sgemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale_c(M, N, beta, C, ldc);
  gemm_slab(ta, tb, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale_c(M, N, beta, C, ldc);
  if (use_openblas) {
    OpenBlas* ob = openblas();
    if (ob->set_threads && ob->threads != num_threads()) {
      ob->threads = num_threads();
      ob->set_threads(ob->threads);
    }
    ob->sgemm(101, ta ? 112 : 111, tb ? 112 : 111, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C,
              (int)ldc);
    return;
  }
  const KernelInfo& ki = kernel();
  double flops = 2.0 * (double)M * (double)N * (double)K;
  int threads = num_threads();
  if (threads <= 1 || flops < 4e6) return gemm_slab(ta, tb, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Split the larger side of C into slabs aligned to the micro-tile.
  bool split_n = N >= M;
  int64_t unit = split_n ? ki.nr : ki.mr;
  int64_t units = ((split_n ? N : M) + unit - 1) / unit;
  int tasks = (int)std::min<int64_t>(threads, units);
  parallel_run(tasks, [&](int t, int nt) {
    int64_t u0 = units * t / nt, u1 = units * (t + 1) / nt;
    if (split_n) {
      int64_t n0 = u0 * unit, n1 = std::min(N, u1 * unit);
      if (n0 < n1) gemm_slab(ta, tb, 0, M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
      int64_t m0 = u0 * unit, m1 = std::min(M, u1 * unit);
      if (m0 < m1) gemm_slab(ta, tb, m0, m1, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
std::string gemm_kernel_name() { return kernel().name; }

// ---- ops ------------------------------------------------------------------------------------------

// matmul_forward(out, a, b, batch, M, N, K, trans_a, trans_b, a_batch_stride, b_batch_stride, beta)
//   out[bi] (M x N) = op(a[bi]) op(b[bi]) + beta * out[bi]; a batch stride of 0 broadcasts one
//   operand over the batch. Backward is two more matmuls (lib/ops/matmul.ts).
void matmul_forward(const MatmulForward& op) {
  const auto& [batch, M, N, K, ta, tb, sa, sb, beta, out, a, b] = op;
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

Info gemm_info() {
  Info i;
  i.str("impl", gemm_impl()).str("kernel", gemm_kernel_name());
  i.flag("openblasAvailable", openblas() != nullptr).num("threads", num_threads());
  return i;
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
