// ---------------------------------------------------------------------------------------------
// elementwise.cc: the CPU kernels (the readable reference) of native/ops/elementwise.h:
// broadcasting binary arithmetic, unary functions (activations, exp/log) with their derivatives,
// affine scaling, in-place accumulation, and seeded dropout.
//
// Broadcasting is described by the output shape and, per operand, strides in output coordinates
// (0 along a broadcast axis); lib/ops/elementwise.ts computes them. The backward of a broadcast is
// sum_to: summing a gradient of the output's shape down to an operand's shape.
// ---------------------------------------------------------------------------------------------
#include "ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/parallel.h"
#include "common/rng.h"
#include "cpu/activation.h"
#include "cpu/dropout.h"

// The unary functions, in kind order (lib/ops/elementwise.ts's UNARY): name, f(x), and f'(x) from
// the input x and the output y = f(x). native/cuda/elementwise.cu's PSTAL_UNARY_CUDA is the twin.
// Steps are written without selects, which GCC compiles to a branch per element (mispredicted
// half the time on signs): abs's as converted comparisons, relu's as bit masks (cpu/activation.h).
#define PSTAL_UNARY_CPU(X)                                                                     \
  X(relu, relu_f(x), relu_df(x))                                                               \
  X(gelu, 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f)), gelu_df(x)) /* exact GELU */ \
  X(sigmoid, 1.f / (1.f + std::exp(-x)), y * (1.f - y))                                        \
  X(exp, std::exp(x), y)                                                                       \
  X(log, std::log(x), 1.f / x)                                                                 \
  X(tanh, std::tanh(x), 1.f - y * y)                                                           \
  X(neg, -x, -1.f)                                                                             \
  X(sqrt, std::sqrt(x), 0.5f / y)                                                              \
  X(abs, std::fabs(x), (float)(x > 0.f) - (float)(x < 0.f))

namespace pstal {
namespace {

template <int OP>
inline float apply(float a, float b) {
  if (OP == ADD) return a + b;
  if (OP == SUB) return a - b;
  if (OP == MUL) return a * b;
  if (OP == DIV) return a / b;
  if (OP == MAXIMUM) return a > b ? a : b;
  return a < b ? a : b;
}


// Offsets of output element `i` in a and b given the output shape and the operands' strides.
struct Broadcast {
  int nd;
  int64_t shape[MAX_DIMS], sa[MAX_DIMS], sb[MAX_DIMS];
  void offsets(int64_t i, int64_t& oa, int64_t& ob) const {
    oa = ob = 0;
    for (int d = nd - 1; d >= 0; d--) {
      int64_t c = i % shape[d];
      i /= shape[d];
      oa += c * sa[d];
      ob += c * sb[d];
    }
  }
};

template <int OP>
void binary_kernel(float* out, const float* a, const float* b, const Broadcast& bc, int64_t n) {
  // Fast paths: equal contiguous operands, or a row vector broadcast along the last axis.
  bool a_contig = true, b_contig = true;
  int64_t stride = 1;
  for (int d = bc.nd - 1; d >= 0; d--) {
    if (bc.shape[d] != 1) {
      if (bc.sa[d] != stride) a_contig = false;
      if (bc.sb[d] != stride) b_contig = false;
    }
    stride *= bc.shape[d];
  }
  if (a_contig && b_contig) {
    parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; i++) out[i] = apply<OP>(a[i], b[i]);
    });
    return;
  }
  int64_t inner = bc.nd ? bc.shape[bc.nd - 1] : 1;
  parallel_for(n / (inner ? inner : 1), std::max<int64_t>(1, (1 << 14) / (inner ? inner : 1)), [&](int64_t s, int64_t e) {
    int64_t la = bc.nd ? bc.sa[bc.nd - 1] : 0, lb = bc.nd ? bc.sb[bc.nd - 1] : 0;
    for (int64_t r = s; r < e; r++) {
      int64_t oa, ob;
      bc.offsets(r * inner, oa, ob);
      float* o = out + r * inner;
      const float* pa = a + oa;
      const float* pb = b + ob;
      if (la == 1 && lb == 1)
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[j], pb[j]);
      else if (la == 1 && lb == 0)
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[j], pb[0]);
      else if (la == 0 && lb == 1)
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[0], pb[j]);
      else
        for (int64_t j = 0; j < inner; j++) o[j] = apply<OP>(pa[j * la], pb[j * lb]);
    }
  });
}

// d GELU(x) / dx = Phi(x) + x phi(x)
inline float gelu_df(float x) {
  float cdf = 0.5f * (1.f + std::erf(x * 0.70710678118654752f));
  float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
  return cdf + x * pdf;
}

#define PSTAL_X(name, f, df) UNARY_##name,
enum UnaryKind { PSTAL_UNARY_CPU(PSTAL_X) UNARY_COUNT };
#undef PSTAL_X

// out[i] = f(x[i]); f is one kind's function, inlined into the loop.
template <typename F>
void map_unary(float* out, const float* x, int64_t n, F f) {
  parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) out[i] = f(x[i]);
  });
}

// dx[i] = dy[i] * df(x[i], y[i]).
template <typename DF>
void map_unary_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, DF df) {
  parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) dx[i] = dy[i] * df(x[i], y[i]);
  });
}

}  // namespace

// ---- kernels ----------------------------------------------------------------------------------

void binary_forward(const BinaryForward& a) {
  Broadcast bc;
  bc.nd = (int)a.shape.size();
  for (int d = 0; d < bc.nd; d++) bc.shape[d] = a.shape[d], bc.sa[d] = a.sa[d], bc.sb[d] = a.sb[d];
  switch (a.op) {
    case ADD: binary_kernel<ADD>(a.out, a.a, a.b, bc, a.n); break;
    case SUB: binary_kernel<SUB>(a.out, a.a, a.b, bc, a.n); break;
    case MUL: binary_kernel<MUL>(a.out, a.a, a.b, bc, a.n); break;
    case DIV: binary_kernel<DIV>(a.out, a.a, a.b, bc, a.n); break;
    case MAXIMUM: binary_kernel<MAXIMUM>(a.out, a.a, a.b, bc, a.n); break;
    default: binary_kernel<MINIMUM>(a.out, a.a, a.b, bc, a.n); break;
  }
}

void sum_to(const SumTo& a) {
  const std::vector<int64_t>& shape = a.shape;
  const std::vector<int64_t>& so = a.so;
  float* out = a.out;
  const float* x = a.x;
  int64_t n = a.n;
  for (int64_t i = 0; i < a.out_n; i++) out[i] = 0.f;
  int nd = (int)shape.size();
  int64_t inner = nd ? shape[nd - 1] : 1, inner_stride = nd ? so[nd - 1] : 0;
  if (inner == 0) return;
  Broadcast bc;
  bc.nd = nd;
  for (int d = 0; d < nd; d++) bc.shape[d] = shape[d], bc.sa[d] = so[d], bc.sb[d] = 0;
  // Serial: different input rows may land on the same output row. Sizes here are small.
  for (int64_t r = 0; r < n / inner; r++) {
    int64_t oo, unused;
    bc.offsets(r * inner, oo, unused);
    const float* xr = x + r * inner;
    float* o = out + oo;
    if (inner_stride == 1)
      for (int64_t j = 0; j < inner; j++) o[j] += xr[j];
    else {
      double s = 0;
      for (int64_t j = 0; j < inner; j++) s += xr[j];
      o[0] += (float)s;
    }
  }
}

int unary_kinds() { return UNARY_COUNT; }

void unary_forward(const UnaryForward& a) {
  switch (a.kind) {
#define PSTAL_X(name, f, df) \
  case UNARY_##name: return map_unary(a.out, a.x, a.n, [](float x) { return f; });
    PSTAL_UNARY_CPU(PSTAL_X)
#undef PSTAL_X
  }
}

void unary_backward(const UnaryBackward& a) {
  switch (a.kind) {
#define PSTAL_X(name, f, df) \
  case UNARY_##name:         \
    return map_unary_backward(a.dx, a.dy, a.x, a.y, a.n, []([[maybe_unused]] float x, [[maybe_unused]] float y) { return df; });
    PSTAL_UNARY_CPU(PSTAL_X)
#undef PSTAL_X
  }
}

// affine and axpy are memory-bound passes (axpy accumulates every parameter's gradient once per
// video: 9 GB an iteration at D = 2048); split across the pool like the other elementwise loops,
// element for element the same arithmetic.
void affine(const Affine& a) {
  parallel_for(a.n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) a.out[i] = a.alpha * a.x[i] + a.beta;
  });
}

void axpy(const Axpy& a) {
  parallel_for(a.n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) a.y[i] += a.alpha * a.x[i];
  });
}

// ---- dropout (cpu/dropout.h) -----------------------------------------------------------------------

// Both loops take rng.h's uniform01(seed, base + i) apart: one key per 2^32 elements (by_key splits
// the range where it changes), then mix32 per element, which GCC vectorizes in AVX2 lanes.
template <class F>
static void by_key(uint64_t seed, uint64_t base, int64_t n, F run) {
  for (int64_t i = 0; i < n;) {
    uint64_t g = base + (uint64_t)i;
    int64_t to_block_end = (int64_t)(((g >> 32) + 1) << 32) - (int64_t)g;  // > 0
    int64_t m = std::min(n - i, to_block_end);
    run(i, m, dropout_key(seed, g >> 32), (uint32_t)g);
    i += m;
  }
}

// uniform01 < p without the float conversion: the 24 bits u are compared with the smallest integer
// at least p 2^24 (u 2^-24 < p  <=>  u < ceil(p 2^24), exactly). The loops count the element's low
// 32 bits in a 32-bit variable (a 64-bit index became lane shuffles in every iteration) and build
// the multiplier (keep or +0) and the sign mark from bit masks: integer lane operations only, which
// GCC vectorizes at every width; the same bits as rng.h's dropout_scale.
static uint32_t drop_below(float p) { return (uint32_t)std::ceil((double)p * 16777216.0); }

__attribute__((target_clones("avx512f", "avx2", "default"))) static void dropout_run(float* out, const float* in, int64_t n,
                                                                                    uint32_t key, uint32_t lo,
                                                                                    uint32_t below, float keep) {
  uint32_t keep_bits;
  std::memcpy(&keep_bits, &keep, sizeof keep_bits);
  uint32_t c = lo;
  for (int64_t i = 0; i < n; i++, c++) {
    uint32_t kept = (uint32_t)(dropout_bits(key, c) >= below);
    uint32_t m_bits = keep_bits & (0u - kept);  // keep, or +0 where dropped
    float m;
    std::memcpy(&m, &m_bits, sizeof m);
    out[i] = in[i] * m;
  }
}

void apply_dropout(float* out, const float* in, int64_t n, uint64_t seed, uint64_t base, float p) {
  const float keep = 1.f / (1.f - p);
  const uint32_t below = drop_below(p);
  by_key(seed, base, n, [&](int64_t i, int64_t m, uint32_t key, uint32_t lo) { dropout_run(out + i, in + i, m, key, lo, below, keep); });
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void dropout_mark_run(float* __restrict out, float* __restrict in,
                                                                                         int64_t n, float scale, uint32_t key,
                                                                                         uint32_t lo, uint32_t below, float keep) {
  uint32_t keep_bits;
  std::memcpy(&keep_bits, &keep, sizeof keep_bits);
  uint32_t c = lo;
  for (int64_t i = 0; i < n; i++, c++) {
    uint32_t dropped = (uint32_t)(dropout_bits(key, c) < below);
    uint32_t m_bits = keep_bits & (dropped - 1u);  // keep, or +0 where dropped
    float m;
    std::memcpy(&m, &m_bits, sizeof m);
    float x = in[i] * scale;
    out[i] = x * m;
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits ^= dropped << 31;
    std::memcpy(in + i, &bits, sizeof bits);
  }
}

void apply_dropout_mark(float* __restrict out, float* __restrict in, int64_t n, float scale, uint64_t seed, uint64_t base, float p) {
  const float keep = 1.f / (1.f - p);
  const uint32_t below = drop_below(p);
  by_key(seed, base, n, [&](int64_t i, int64_t m, uint32_t key, uint32_t lo) { dropout_mark_run(out + i, in + i, m, scale, key, lo, below, keep); });
}

void dropout(const Dropout& a) {
  parallel_for(a.n, 1 << 14, [&](int64_t b, int64_t e) { apply_dropout(a.out + b, a.x + b, e - b, a.seed, (uint64_t)b, a.p); });
}

// The dropped values land in out first (dropout's own loop), then the residual is added: two
// roundings, as the separate ops (no multiply-add fused across them).
void dropout_add(const DropoutAdd& a) {
  parallel_for(a.n, 1 << 14, [&](int64_t b, int64_t e) {
    apply_dropout(a.out + b, a.x + b, e - b, a.seed, (uint64_t)b, a.p);
    for (int64_t i = b; i < e; i++) a.out[i] = a.residual[i] + a.out[i];
  });
}

// each product and sum rounded on its own, as the separate ops (this file is built without FMA
// contraction for its plain loops: the x86-64 baseline has no FMA)
void blend_forward(const Blend& a) {
  for (int64_t i = 0; i < a.n; i++) {
    float w = -1.f * a.y[i] + 1.f;  // affine(y, -1, 1)
    a.out[i] = a.a[i] * a.y[i] + a.b[i] * w;
  }
}

void blend_backward(const Blend& a) {
  for (int64_t i = 0; i < a.n; i++) {
    if (a.da) a.da[i] = a.g[i] * a.y[i];
    if (a.db) a.db[i] = a.g[i] * (-1.f * a.y[i] + 1.f);
  }
}

void weighted_sum(const WeightedSum& a) {
  parallel_for(a.n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) a.out[i] = weighted_pairwise(a.w, a.x, i, 0, a.k);
  });
}

void weighted_sum_backward(const WeightedSumBackward& a) {
  for (int k = 0; k < a.k; k++) {
    if (!a.d[k]) continue;
    parallel_for(a.n, 1 << 15, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; i++) a.d[k][i] = a.w[k] * a.g[i] + 0.f;
    });
  }
}

}  // namespace pstal
