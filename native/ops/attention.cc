// attention.cc: the arguments of the ops of ops/attention.h, read and checked once for both addons.
#include "ops/attention.h"

#include <string>

#include "common/op.h"

namespace pstal {

// attention_forward(out, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed)
PSTAL_OP(attention_forward) {
  int64_t Lq = args.i64(5, "Lq"), Lk = args.i64(6, "Lk"), D = args.i64(7, "D"), H = args.i64(8, "heads");
  const float p = args.probability(9, "dropout_p");
  uint64_t seed = (uint64_t)args.f64(10, "seed");
  PSTAL_CHECK(args, Lq >= 1 && Lq <= Lk, "Lq (" + std::to_string(Lq) + ") must be in [1, Lk = " + std::to_string(Lk) + "]");
  PSTAL_CHECK(args, D >= 1 && H >= 1 && D % H == 0,
              "heads (" + std::to_string(H) + ") must divide D (" + std::to_string(D) + ")");
  float* out = args.buf(0, Lq * D, "out");
  float* probs = args.has(1) ? args.buf(1, H * Lq * Lk, "probs") : nullptr;
  const float* q = args.buf(2, Lq * D, "q");
  const float* k = args.buf(3, Lk * D, "k");
  const float* v = args.buf(4, Lk * D, "v");
  attention_forward(AttentionForward{Lq, Lk, D, H, p, seed, out, probs, q, k, v});
  return args.env().Undefined();
}

// attention_backward(dq, dk, dv, dout, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed)
PSTAL_OP(attention_backward) {
  int64_t Lq = args.i64(8, "Lq"), Lk = args.i64(9, "Lk"), D = args.i64(10, "D"), H = args.i64(11, "heads");
  const float p = args.probability(12, "dropout_p");
  uint64_t seed = (uint64_t)args.f64(13, "seed");
  PSTAL_CHECK(args, Lq >= 1 && Lq <= Lk, "Lq (" + std::to_string(Lq) + ") must be in [1, Lk = " + std::to_string(Lk) + "]");
  PSTAL_CHECK(args, D >= 1 && H >= 1 && D % H == 0, "heads must divide D");
  float* dq = args.buf(0, Lq * D, "dq");
  float* dk = args.buf(1, Lk * D, "dk");
  float* dv = args.buf(2, Lk * D, "dv");
  const float* dout = args.buf(3, Lq * D, "dout");
  const float* probs = args.buf(4, H * Lq * Lk, "probs");
  const float* q = args.buf(5, Lq * D, "q");
  const float* k = args.buf(6, Lk * D, "k");
  const float* v = args.buf(7, Lk * D, "v");
  attention_backward(AttentionBackward{Lq, Lk, D, H, p, seed, dq, dk, dv, dout, probs, q, k, v});
  return args.env().Undefined();
}

}  // namespace pstal
