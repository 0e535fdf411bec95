// attention.cc: the arguments of the ops of ops/attention.h, read and checked once for both addons.
#include "ops/attention.h"

#include <string>

#include "common/op.h"

namespace pstal {

// attention_forward(out, probs, q, k, v, L, D, H, dropout_p, seed)
PSTAL_OP(attention_forward) {
  int64_t L = args.i64(5, "L"), D = args.i64(6, "D"), H = args.i64(7, "heads");
  double p = args.f64(8, "dropout_p");
  uint64_t seed = (uint64_t)args.f64(9, "seed");
  PSTAL_CHECK(args, L >= 1 && D >= 1 && H >= 1 && D % H == 0,
              "heads (" + std::to_string(H) + ") must divide D (" + std::to_string(D) + ")");
  PSTAL_CHECK(args, p >= 0 && p < 1, "dropout_p must be in [0, 1)");
  float* out = args.buf(0, L * D, "out");
  float* probs = args.has(1) ? args.buf(1, H * L * L, "probs") : nullptr;
  const float* q = args.buf(2, L * D, "q");
  const float* k = args.buf(3, L * D, "k");
  const float* v = args.buf(4, L * D, "v");
  attention_forward(AttentionForward{L, D, H, p, seed, out, probs, q, k, v});
  return args.env().Undefined();
}

// attention_backward(dq, dk, dv, dout, probs, q, k, v, L, D, H, dropout_p, seed)
PSTAL_OP(attention_backward) {
  int64_t L = args.i64(8, "L"), D = args.i64(9, "D"), H = args.i64(10, "heads");
  double p = args.f64(11, "dropout_p");
  uint64_t seed = (uint64_t)args.f64(12, "seed");
  PSTAL_CHECK(args, L >= 1 && D >= 1 && H >= 1 && D % H == 0, "heads must divide D");
  float* dq = args.buf(0, L * D, "dq");
  float* dk = args.buf(1, L * D, "dk");
  float* dv = args.buf(2, L * D, "dv");
  const float* dout = args.buf(3, L * D, "dout");
  const float* probs = args.buf(4, H * L * L, "probs");
  const float* q = args.buf(5, L * D, "q");
  const float* k = args.buf(6, L * D, "k");
  const float* v = args.buf(7, L * D, "v");
  attention_backward(AttentionBackward{L, D, H, p, seed, dq, dk, dv, dout, probs, q, k, v});
  return args.env().Undefined();
}

}  // namespace pstal
