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

}  // namespace pstal
