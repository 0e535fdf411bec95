// matmul.cc: the arguments of the ops of ops/matmul.h, read and checked once for both addons.
#include "ops/matmul.h"

#include <string>

#include "common/op.h"

namespace pstal {

// matmul_forward(out, a, b, batch, M, N, K, trans_a, trans_b, a_batch_stride, b_batch_stride, beta)
//   out[bi] (M x N) = op(a[bi]) op(b[bi]) + beta * out[bi]; a batch stride of 0 broadcasts one
//   operand over the batch. Backward is two more matmuls (lib/ops/matmul.ts).
PSTAL_OP(matmul_forward) {
  int64_t batch = args.i64(3, "batch"), M = args.i64(4, "M"), N = args.i64(5, "N"), K = args.i64(6, "K");
  bool ta = args.flag(7, "trans_a"), tb = args.flag(8, "trans_b");
  int64_t sa = args.i64(9, "a_batch_stride"), sb = args.i64(10, "b_batch_stride");
  double beta = args.has(11) ? args.f64(11, "beta") : 0.0;
  PSTAL_CHECK(args, batch >= 0 && M >= 0 && N >= 0 && K >= 0 && sa >= 0 && sb >= 0, "dimensions must be non-negative");
  float* out = args.buf(0, batch * M * N, "out");
  const float* a = args.buf(1, batch == 0 ? 0 : (batch - 1) * sa + M * K, "a");
  const float* b = args.buf(2, batch == 0 ? 0 : (batch - 1) * sb + K * N, "b");
  matmul_forward(MatmulForward{batch, M, N, K, ta, tb, sa, sb, beta, out, a, b});
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
