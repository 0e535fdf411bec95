// matmul.cc: the arguments of the ops of ops/matmul.h, read and checked once for both addons.
#include "ops/matmul.h"

#include <string>

#include "common/op.h"

namespace pstal {

// matmul_forward(out, a, b, batch, M, N, K, trans_a, trans_b, a_batch_stride, b_batch_stride, beta, accumulate)
//   (ops/matmul.h)
PSTAL_OP(matmul_forward) {
  int64_t batch = args.i64(3, "batch"), M = args.i64(4, "M"), N = args.i64(5, "N"), K = args.i64(6, "K");
  bool ta = args.flag(7, "trans_a"), tb = args.flag(8, "trans_b");
  int64_t sa = args.i64(9, "a_batch_stride"), sb = args.i64(10, "b_batch_stride");
  double beta = args.has(11) ? args.f64(11, "beta") : 0.0;
  bool accumulate = args.has(12) ? args.flag(12, "accumulate") : false;
  PSTAL_CHECK(args, batch >= 0 && M >= 0 && N >= 0 && K >= 0 && sa >= 0 && sb >= 0, "dimensions must be non-negative");
  PSTAL_CHECK(args, !accumulate || beta == 0.0, "accumulate adds the product to out: beta must be 0");
  float* out = args.buf(0, batch * M * N, "out");
  const float* a = args.buf(1, batch == 0 ? 0 : (batch - 1) * sa + M * K, "a");
  const float* b = args.buf(2, batch == 0 ? 0 : (batch - 1) * sb + K * N, "b");
  PSTAL_CHECK(args, !accumulate || (out != a && out != b), "accumulate: out must not be an operand");
  matmul_forward(MatmulForward{batch, M, N, K, ta, tb, sa, sb, beta, out, a, b, accumulate});
  return args.env().Undefined();
}

static void linear_dims(Args& args, size_t i, int64_t* M, int64_t* N, int64_t* K) {
  *M = args.i64(i, "M"), *N = args.i64(i + 1, "N"), *K = args.i64(i + 2, "K");
  PSTAL_CHECK(args, *M >= 0 && *N >= 0 && *K >= 0, "M, N and K must be non-negative, received " + shape_str({*M, *N, *K}));
}

// The optional dropout_p and seed at argument i (p 0: none): p in [0, 1) as a float32 (rounding to 1 refused).
static void linear_dropout(Args& args, size_t i, float* p, uint64_t* seed) {
  *p = args.has(i) ? args.probability(i, "dropout_p") : 0.f;
  *seed = args.has(i + 1) ? (uint64_t)args.f64(i + 1, "seed") : 0;
}

// linear_forward(out, x, w, bias|null, M, N, K, relu[, dropout_p, seed])  (ops/matmul.h)
PSTAL_OP(linear_forward) {
  LinearForward a;
  linear_dims(args, 4, &a.M, &a.N, &a.K);
  a.relu = args.flag(7, "relu");
  linear_dropout(args, 8, &a.p, &a.seed);
  a.out = args.buf(0, a.M * a.N, "out");
  a.x = args.buf(1, a.M * a.K, "x");
  a.w = args.buf(2, a.N * a.K, "w");
  a.bias = args.has(3) ? args.buf(3, a.N, "bias") : nullptr;
  PSTAL_CHECK(args, a.out != a.x && a.out != a.w && a.out != a.bias, "out must not be an input");
  linear_forward(a);
  return args.env().Undefined();
}

// linear_backward(dx|null, dw|null, db|null, g, x, w, y|null, M, N, K, acc_x, acc_w, acc_b[, dropout_p, seed])  (ops/matmul.h)
PSTAL_OP(linear_backward) {
  LinearBackward a;
  linear_dims(args, 7, &a.M, &a.N, &a.K);
  a.acc_x = args.flag(10, "acc_x"), a.acc_w = args.flag(11, "acc_w"), a.acc_b = args.flag(12, "acc_b");
  linear_dropout(args, 13, &a.p, &a.seed);
  a.dx = args.has(0) ? args.buf(0, a.M * a.K, "dx") : nullptr;
  a.dw = args.has(1) ? args.buf(1, a.N * a.K, "dw") : nullptr;
  a.db = args.has(2) ? args.buf(2, a.N, "db") : nullptr;
  a.g = args.buf(3, a.M * a.N, "g");
  a.x = args.buf(4, a.M * a.K, "x");
  a.w = args.buf(5, a.N * a.K, "w");
  a.y = args.has(6) ? args.buf(6, a.M * a.N, "y") : nullptr;
  for (const float* in : {a.g, a.x, a.w, a.y})
    PSTAL_CHECK(args, !in || (in != a.dx && in != a.dw && in != a.db), "a gradient output must not be an input");
  PSTAL_CHECK(args, (!a.dx || (a.dx != a.dw && a.dx != a.db)) && (!a.dw || a.dw != a.db), "the gradient outputs must be distinct buffers");
  linear_backward(a);
  return args.env().Undefined();
}

PSTAL_OP(gemm_info) { return to_js(args.env(), gemm_info()); }

// set_gemm_impl(impl)
PSTAL_OP(set_gemm_impl) {
  set_gemm_impl(args.str(0, "impl"));
  return args.env().Undefined();
}

// set_gemm_precision(precision)
PSTAL_OP(set_gemm_precision) {
  set_gemm_precision(args.str(0, "precision"));
  return args.env().Undefined();
}

}  // namespace pstal
