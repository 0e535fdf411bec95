// ---------------------------------------------------------------------------------------------
// elementwise.h: the arguments of the elementwise ops (lib/ops/elementwise.ts), read once for
// both backends by ops/elementwise.cc; kernels in native/cpu/elementwise.cc (the reference) and
// native/cuda/elementwise.cu, behind these signatures.
//
// Broadcasting is described by the output shape and, per operand, strides in output coordinates
// (0 along a broadcast axis). The unary functions are listed once per backend, in an X-macro at
// the top of each kernel file (PSTAL_UNARY_CPU, PSTAL_UNARY_CUDA); a function's kind is its place
// in the list, which is also its number in lib/ops/elementwise.ts's UNARY (test/gpu/cuda-compile.test.ts
// checks that the three lists agree). Adding one touches only those three files.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pstal {

constexpr int MAX_DIMS = 8;
enum Binary { ADD = 0, SUB = 1, MUL = 2, DIV = 3, MAXIMUM = 4, MINIMUM = 5 };

// Elements an operand with these strides spans: 1 + sum (shape - 1) * stride (0 if empty).
inline int64_t span(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t m = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 0) return 0;
    m += (shape[d] - 1) * strides[d];
  }
  return m + 1;
}

// out = a OP b, broadcast; n = the product of shape (> 0).
struct BinaryForward {
  int op;
  float* out;
  const float* a;
  const float* b;
  std::vector<int64_t> shape, sa, sb;
  int64_t n, span_a, span_b;
};
void binary_forward(const BinaryForward& a);

// out (zeroed by the kernel) += x summed over the axes where out_strides is 0.
struct SumTo {
  float* out;
  const float* x;
  std::vector<int64_t> shape, so;  // x's shape, out's strides in x's coordinates
  int64_t n, out_n;
};
void sum_to(const SumTo& a);

// The number of unary kinds this backend implements (its PSTAL_UNARY_* list).
int unary_kinds();

// out = f_kind(x)
struct UnaryForward {
  int kind;
  float* out;
  const float* x;
  int64_t n;
};
void unary_forward(const UnaryForward& a);

// dx = dy * f_kind'(x), y = f_kind(x)
struct UnaryBackward {
  int kind;
  float* dx;
  const float* dy;
  const float* x;
  const float* y;
  int64_t n;
};
void unary_backward(const UnaryBackward& a);

// out = alpha * x + beta
struct Affine {
  float* out;
  const float* x;
  int64_t n;
  float alpha, beta;
};
void affine(const Affine& a);

// y += alpha * x
struct Axpy {
  float* y;
  const float* x;
  int64_t n;
  float alpha;
};
void axpy(const Axpy& a);

// out = x * mask(seed): 0 with probability p, else 1 / (1 - p) (common/rng.h, identical on both).
struct Dropout {
  float* out;
  const float* x;
  int64_t n;
  float p;
  uint64_t seed;
};
void dropout(const Dropout& a);

// dropout_add(out, x, residual, n, p, seed): out = residual + dropout(x) (the mask of dropout(x, p,
// seed)): a residual connection's dropout and add in one call, each value the bits of the two ops.
// The backward is dropout(g) for x and g itself for the residual.
struct DropoutAdd {
  float* out;
  const float* x;
  const float* residual;
  int64_t n;
  float p;
  uint64_t seed;
};
void dropout_add(const DropoutAdd& a);

// weighted_sum(out, n, weights, x0, x1, ...): out = sum_k (w_k x_k + 0), summed pairwise (the first
// ceil(K/2) terms, then the rest, recursively: ((t0 + t1) + (t2 + t3)) for four), each term the bits
// of affine(x_k, w_k, 0): a loss's weighted terms in one call. weighted_sum_backward(g, n, weights,
// d0, d1, ...): d_k = w_k g + 0, affine's backward. At most 8 terms.
constexpr int MAX_WEIGHTED_TERMS = 8;
struct WeightedSum {
  float* out;
  int64_t n;
  int k;
  float w[MAX_WEIGHTED_TERMS];
  const float* x[MAX_WEIGHTED_TERMS];
};
void weighted_sum(const WeightedSum& a);
struct WeightedSumBackward {
  const float* g;
  int64_t n;
  int k;
  float w[MAX_WEIGHTED_TERMS];
  float* d[MAX_WEIGHTED_TERMS];  // null: that gradient is not wanted
};
void weighted_sum_backward(const WeightedSumBackward& a);

// blend_forward(out, a, b, y, n): out = a y + b (1 - y) (lib/models/hrpro/stage1.ts: a video's
// score, the top-k mean for its classes, the mean over time for the others), the bits of
// add(mul(a, y), mul(b, affine(y, -1, 1))). blend_backward(da|null, db|null, g, y, n): da = g y,
// db = g (1 - y) (y takes no gradient: labels).
struct Blend {
  int64_t n;
  float* out;
  float* da;
  float* db;
  const float* a;
  const float* b;
  const float* y;
  const float* g;
};
void blend_forward(const Blend& a);
void blend_backward(const Blend& a);

// The pairwise sum of weighted_sum at one element (shared by both backends: the same bits).
#if defined(__CUDACC__)
__host__ __device__
#endif
inline float weighted_pairwise(const float* w, const float* const* x, int64_t i, int lo, int hi) {
  if (hi - lo == 1) return w[lo] * x[lo][i] + 0.f;
  int mid = lo + (hi - lo + 1) / 2;
  return weighted_pairwise(w, x, i, lo, mid) + weighted_pairwise(w, x, i, mid, hi);
}

}  // namespace pstal
