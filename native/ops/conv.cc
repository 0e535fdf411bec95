// conv.cc: the arguments of the ops of ops/conv.h, read and checked once for both addons.
#include "ops/conv.h"

#include <string>

#include "common/op.h"

namespace pstal {

// conv1d_forward(out, x, weight, bias | null, T, Cin, Cout, k, pad)
PSTAL_OP(conv1d_forward) {
  int64_t T = args.i64(4, "T"), Cin = args.i64(5, "Cin"), Cout = args.i64(6, "Cout"), k = args.i64(7, "k"), pad = args.i64(8, "pad");
  PSTAL_CHECK(args, T >= 0 && Cin >= 1 && Cout >= 1 && k >= 1 && pad >= 0, "invalid conv1d dimensions");
  int64_t T_out = T + 2 * pad - k + 1;
  PSTAL_CHECK(args, T_out >= 0, "kernel " + std::to_string(k) + " longer than the padded input of " + std::to_string(T));
  float* out = args.buf(0, T_out * Cout, "out");
  const float* x = args.buf(1, T * Cin, "x");
  const float* w = args.buf(2, Cout * Cin * k, "weight");
  const float* bias = args.has(3) ? args.buf(3, Cout, "bias") : nullptr;
  if (T_out == 0) return args.env().Undefined();
  conv1d_forward(Conv1dForward{T, Cin, Cout, k, pad, T_out, out, x, w, bias});
  return args.env().Undefined();
}

// conv1d_backward(dx | null, dweight | null, dbias | null, dy, x, weight, T, Cin, Cout, k, pad[, acc_w, acc_b])
PSTAL_OP(conv1d_backward) {
  int64_t T = args.i64(6, "T"), Cin = args.i64(7, "Cin"), Cout = args.i64(8, "Cout"), k = args.i64(9, "k"), pad = args.i64(10, "pad");
  int64_t T_out = T + 2 * pad - k + 1;
  PSTAL_CHECK(args, T >= 0 && Cin >= 1 && Cout >= 1 && k >= 1 && pad >= 0 && T_out >= 0, "invalid conv1d dimensions");
  float* dx = args.has(0) ? args.buf(0, T * Cin, "dx") : nullptr;
  float* dw = args.has(1) ? args.buf(1, Cout * Cin * k, "dweight") : nullptr;
  float* db = args.has(2) ? args.buf(2, Cout, "dbias") : nullptr;
  const float* dy = args.buf(3, T_out * Cout, "dy");
  const float* x = args.buf(4, T * Cin, "x");
  const float* w = args.buf(5, Cout * Cin * k, "weight");
  bool acc_w = args.has(11) ? args.flag(11, "acc_w") : false, acc_b = args.has(12) ? args.flag(12, "acc_b") : false;
  for (const float* in : {dy, x, w})
    PSTAL_CHECK(args, in != dx && in != dw && in != db, "a gradient output must not be an input");
  conv1d_backward(Conv1dBackward{T, Cin, Cout, k, pad, T_out, dx, dw, db, dy, x, w, acc_w, acc_b});
  return args.env().Undefined();
}

}  // namespace pstal
