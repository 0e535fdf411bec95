// ---------------------------------------------------------------------------------------------
// loss.h: elementwise losses and their backward (lib/ops/loss.ts).
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/loss.cc; the kernels behind these signatures are native/cpu/loss.cc (the reference) and
// native/cuda/loss.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// loss_forward(kind, out, a, b, n, beta)   (BCE: a = p, b = target)
struct LossForward {
  int64_t kind;
  int64_t n;
  float beta;
  float* out;
  const float* a;
  const float* b;
};
void loss_forward(const LossForward& a);

// loss_backward(kind, da, dout, a, b, n, beta): gradient with respect to a (for b it is -da, except BCE)
struct LossBackward {
  int64_t kind;
  int64_t n;
  float beta;
  float* da;
  const float* g;
  const float* a;
  const float* b;
};
void loss_backward(const LossBackward& a);

// focal_bce_forward(out [1], p, y, c, n, scale) and focal_bce_backward(dp, g [1], p, y, c, n, scale):
// the focal-weighted BCE of SPEC §2 (lib/models/hrpro/losses.ts focalFrameLoss) in one call each way,
//   out = scale * sum_i (p_i c_i + y_i)^2 * bce(p_i, y_i),   c = 1 - 2 y  (so p c + y = 1 - p_t)
// run as the chain of the separate ops' kernels (focal_bce_chain below), so every value is the bits of
// mul, add, mul, bce, mul, sumAll and mulScalar one after another, and the backward the bits of theirs.
struct FocalBce {
  int64_t n;
  float scale;
  float* out;      // forward: the loss [1]
  float* dp;       // backward: the gradient of p [n]
  const float* g;  // backward: the loss's gradient [1]
  const float* p;
  const float* y;
  const float* c;
};
void focal_bce_forward(const FocalBce& a);
void focal_bce_backward(const FocalBce& a);

// The floats of workspace focal_bce_chain needs.
inline int64_t focal_bce_work(int64_t n) { return 7 * n + 2; }

}  // namespace pstal

#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace pstal {

// The chain of kernels both backends run for focal_bce_* (each kernel is the backend's own, the one
// the separate op would call), over a workspace w of focal_bce_work(n) floats of that backend's memory.
inline void focal_bce_chain(const FocalBce& a, float* w, bool backward) {
  const int64_t n = a.n;
  const std::vector<int64_t> shape{n}, unit{1};
  auto bin = [&](int op, float* out, const float* x, const float* y) {
    BinaryForward b;
    b.op = op, b.out = out, b.a = x, b.b = y, b.shape = shape, b.sa = unit, b.sb = unit, b.n = n, b.span_a = n, b.span_b = n;
    binary_forward(b);
  };
  float *m = w, *o = w + n, *f = w + 2 * n, *l = w + 3 * n, *wl = w + 4 * n, *s = w + 5 * n;
  bin(MUL, m, a.p, a.c);  // p (1 - 2y)
  bin(ADD, o, m, a.y);    // 1 - p_t
  bin(MUL, f, o, o);      // the focal weight
  loss_forward(LossForward{0, n, 0.f, l, a.p, a.y});
  if (!backward) {
    bin(MUL, wl, l, f);
    reduce_forward(ReduceForward{SUM, 1, n, 1, s, nullptr, wl, n});
    affine(Affine{a.out, s, 1, a.scale, 0.f});
    return;
  }
  // backward, each op's in the order autograd runs them: mulScalar, sumAll, mul(l, f), then bce's
  // and the focal weight's branches; p's two gradients are added last (a sum of two: either order)
  float *dwl = wl, *gs = s, *dl = m, *df = w + 5 * n + 1, *d2 = w + 6 * n + 1;
  affine(Affine{gs, a.g, 1, a.scale, 0.f});
  reduce_backward(ReduceBackward{SUM, 1, n, 1, dwl, gs, nullptr});
  bin(MUL, dl, dwl, f);
  bin(MUL, df, dwl, l);
  loss_backward(LossBackward{0, n, 0.f, a.dp, dl, a.p, a.y});
  bin(MUL, f, df, o);  // mul(o, o): g o for each operand, summed
  bin(MUL, l, df, o);
  axpy(Axpy{f, l, n, 1.f});
  bin(MUL, d2, f, a.c);  // add(m, y) passes it on; mul(p, c) gives p's
  axpy(Axpy{a.dp, d2, n, 1.f});
}

// similarity_mean_forward(out [C], E [rows, D], P [C, D], index Int32Array [R], rows, D, C, scale, eps) and
// similarity_mean_backward(dE [rows, D] (zeroed by the caller), g [C], E, P, index, rows, D, C, scale, eps):
// the contrastive loss's similarity of SPEC §2 eq. 7 (lib/models/hrpro/losses.ts contrastiveLoss),
//   out[c] = mean_r exp(scale * normalize(E[index[r]]) . P[c]),  normalize(x) = x / max(||x||, eps)
// with P constant (the normalised prototypes), one call each way: the kernels of gatherRows,
// l2Normalize, matmul, mulScalar, exp and mean in a row (similarity_mean_chain), the same bits.
struct SimilarityMean {
  int64_t R, rows, D, C;
  float scale, eps;
  const int32_t* idx;  // host memory, as gather_rows_*'s
  float* out;          // forward [C]
  float* dE;           // backward [rows, D]
  const float* g;      // backward [C]
  const float* E;
  const float* P;
};
void similarity_mean_forward(const SimilarityMean& a);
void similarity_mean_backward(const SimilarityMean& a);

inline int64_t similarity_mean_work(int64_t R, int64_t D, int64_t C) { return 3 * R * D + R + 5 * R * C + 1; }

}  // namespace pstal

#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/shape.h"

namespace pstal {

inline void similarity_mean_chain(const SimilarityMean& a, float* w, bool backward) {
  const int64_t R = a.R, D = a.D, C = a.C, RC = R * C;
  constexpr int EXP = 3;  // lib/ops/elementwise.ts UNARY.exp (the kernel files' lists agree: test/gpu/cuda-compile.test.ts)
  float *xr = w, *xn = w + R * D, *norm = w + 2 * R * D, *s = norm + R, *z = s + RC, *e = z + RC, *extra = e + RC;
  gather_rows_forward(GatherRowsForward{R, a.rows, D, a.idx, xr, a.E});
  l2norm_forward(L2normForward{R, D, a.eps, xn, norm, xr});
  matmul_forward(MatmulForward{1, R, C, D, false, true, R * D, 0, 0.0, s, xn, a.P, false});
  affine(Affine{z, s, RC, a.scale, 0.f});
  unary_forward(UnaryForward{EXP, e, z, RC});
  if (!backward) {
    reduce_forward(ReduceForward{MEAN, 1, R, C, a.out, nullptr, e, RC});
    return;
  }
  // mean's, exp's, mulScalar's, matmul's (the first operand's: P takes none), l2Normalize's and
  // gatherRows's backward in turn
  float *de = s, *dz = extra, *ds = extra + RC, *dxn = xn, *dxr = extra + 2 * RC;
  reduce_backward(ReduceBackward{MEAN, 1, R, C, de, a.g, nullptr});
  unary_backward(UnaryBackward{EXP, dz, de, z, e, RC});
  affine(Affine{ds, dz, RC, a.scale, 0.f});
  matmul_forward(MatmulForward{1, R, D, C, false, false, RC, 0, 0.0, dxn, ds, a.P, false});
  l2norm_backward(L2normBackward{R, D, a.eps, dxr, dxn, xr, norm});
  gather_rows_backward(GatherRowsBackward{R, a.rows, D, a.idx, a.dE, dxr});
}

// contrastive_terms_forward(out [1], b, classes Int32Array [K], C, scale, a_0, ..., a_{K-1}) and
// contrastive_terms_backward(g [1], b, classes, C, scale, db, a_0.., da_0..): the class terms of the
// contrastive loss (SPEC §2 eq. 7; lib/models/hrpro/losses.ts contrastiveLoss), with a_k [C] the
// similarities of class c_k's action rows and b [C] the background rows':
//   out = scale * sum_k 0.5 ((log sum(a_k) - log a_k[c_k]) + (log(a_k[c_k] + b[c_k]) - log a_k[c_k]))
// one call each way, the kernels of the separate ops (slice, log, sumAll, sub, add, mulScalar,
// concat, sumAll, mulScalar) one after another on one-value operands (contrastive_terms_chain), and
// their gradients summed as autograd sums them: a_k's the broadcast of sumAll's, plus the slice's at
// c_k; b's the slices' blocks, the first class's written and the others added to zero.
constexpr int64_t MAX_CONTRASTIVE_CLASSES = 4096;
struct ContrastiveTerms {
  int64_t K, C;
  float scale;
  const int32_t* classes;  // host memory
  const float* const* a;   // K pointers (host array) to [C] each
  const float* b;
  float* out;            // forward [1]
  const float* g;        // backward [1]
  float* db;             // backward [C], zero-filled by the caller
  float* const* da;      // backward: K pointers to [C] each
};
void contrastive_terms_forward(const ContrastiveTerms& a);
void contrastive_terms_backward(const ContrastiveTerms& a);

// Per class 8 forward values and 10 backward ones, the K terms and their gradients, 4 scalars.
inline int64_t contrastive_terms_work(int64_t K) { return 20 * K + 4; }

inline void contrastive_terms_chain(const ContrastiveTerms& p, float* w, bool backward) {
  const int64_t K = p.K, C = p.C;
  constexpr int LOG = 4, NEG = 6;  // lib/ops/elementwise.ts UNARY.log, UNARY.neg
  const std::vector<int64_t> one{1}, unit{1};
  auto bin = [&](int op, float* out, const float* x, const float* y) {
    BinaryForward b;
    b.op = op, b.out = out, b.a = x, b.b = y, b.shape = one, b.sa = unit, b.sb = unit, b.n = 1, b.span_a = 1, b.span_b = 1;
    binary_forward(b);
  };
  auto un = [&](int kind, float* out, const float* x) { unary_forward(UnaryForward{kind, out, x, 1}); };
  auto sum = [&](float* out, const float* x, int64_t n) { reduce_forward(ReduceForward{SUM, 1, n, 1, out, nullptr, x, n}); };
  float* terms = w + 18 * K;  // [K], then their gradients [K], then 4 scalars
  float *dterms = terms + K, *total = dterms + K, *gt = total + 1;
  for (int64_t k = 0; k < K; k++) {
    float* v = w + 18 * k;  // logAc, S, logS, lAct, u, logU, lBkg, t, then the gradients
    const float* ac = p.a[k] + p.classes[k];
    const float* bc = p.b + p.classes[k];
    un(LOG, v + 0, ac);
    sum(v + 1, p.a[k], C);
    un(LOG, v + 2, v + 1);
    bin(SUB, v + 3, v + 2, v + 0);
    bin(ADD, v + 4, ac, bc);
    un(LOG, v + 5, v + 4);
    bin(SUB, v + 6, v + 5, v + 0);
    bin(ADD, v + 7, v + 3, v + 6);
    affine(Affine{terms + k, v + 7, 1, 0.5f, 0.f});
  }
  if (!backward) {
    sum(total, terms, K);
    affine(Affine{p.out, total, 1, p.scale, 0.f});
    return;
  }
  affine(Affine{gt, p.g, 1, p.scale, 0.f});
  reduce_backward(ReduceBackward{SUM, 1, K, 1, dterms, gt, nullptr});
  for (int64_t k = 0; k < K; k++) {
    float* v = w + 18 * k;
    float *dt = v + 8, *nd = v + 9, *du = v + 10, *dS = v + 11, *dl = v + 12, *dac = v + 13, *dac2 = v + 14;
    const float* ac = p.a[k] + p.classes[k];
    affine(Affine{dt, dterms + k, 1, 0.5f, 0.f});                // mulScalar's; add(lAct, lBkg) passes it to both
    unary_forward(UnaryForward{NEG, nd, dt, 1});                 // each sub's second operand: -g
    unary_backward(UnaryBackward{LOG, du, dt, v + 4, v + 5, 1});  // log(ac + bc)
    unary_backward(UnaryBackward{LOG, dS, dt, v + 1, v + 2, 1});  // log(sum a_k)
    bin(ADD, dl, nd, nd);                                         // log a_k[c]'s two uses
    unary_backward(UnaryBackward{LOG, dac2, dl, ac, v + 0, 1});
    bin(ADD, dac, du, dac2);                                      // a_k[c]'s two uses
    // a_k: sumAll's broadcast, then the slice's block added at c_k
    reduce_backward(ReduceBackward{SUM, 1, C, 1, p.da[k], dS, nullptr});
    block_copy(BlockCopy{1, 1, C, p.classes[k], 1, 0, true, p.da[k], dac});
    // b (db zero-filled by the caller): the first class's block written, the later ones added
    block_copy(BlockCopy{1, 1, C, p.classes[k], 1, 0, k > 0, p.db, du});
  }
}

}  // namespace pstal
