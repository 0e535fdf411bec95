// reduce.cc: the arguments of the ops of ops/reduce.h, read and checked once for both addons.
#include "ops/reduce.h"

#include <string>

#include "common/op.h"

namespace pstal {

// reduce_forward(kind, out, argmax, x, outer, len, inner[, axis_len, start]): argmax (a buffer of
// [outer, inner] indices stored as floats) is written for MAX only and may be null otherwise.
PSTAL_OP(reduce_forward) {
  int64_t kind = args.i64(0, "kind"), outer = args.i64(4, "outer"), len = args.i64(5, "len"), inner = args.i64(6, "inner");
  int64_t axis_len = args.has(7) ? args.i64(7, "axis_len") : len, start = args.has(8) ? args.i64(8, "start") : 0;
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown reduction " + std::to_string(kind));
  PSTAL_CHECK(args, outer >= 0 && len >= 1 && inner >= 0, "cannot reduce an empty axis");
  PSTAL_CHECK(args, start >= 0 && start + len <= axis_len,
              "positions [" + std::to_string(start) + ", " + std::to_string(start + len) + ") are not inside an axis of " +
                  std::to_string(axis_len));
  float* out = args.buf(1, outer * inner, "out");
  float* arg = kind == MAX ? args.buf(2, outer * inner, "argmax") : nullptr;
  const float* x = args.buf(3, outer * axis_len * inner, "x");
  reduce_forward(ReduceForward{kind, outer, len, inner, out, arg, x + start * inner, axis_len * inner});
  return args.env().Undefined();
}

// reduce_backward(kind, dx, dy, argmax, outer, len, inner)
PSTAL_OP(reduce_backward) {
  int64_t kind = args.i64(0, "kind"), outer = args.i64(4, "outer"), len = args.i64(5, "len"), inner = args.i64(6, "inner");
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown reduction " + std::to_string(kind));
  float* dx = args.buf(1, outer * len * inner, "dx");
  const float* dy = args.buf(2, outer * inner, "dy");
  const float* arg = kind == MAX ? args.buf(3, outer * inner, "argmax") : nullptr;
  reduce_backward(ReduceBackward{kind, outer, len, inner, dx, dy, arg});
  return args.env().Undefined();
}

// topk_mean_forward(out, index, x, T, C, k): out[c] = mean of the k largest x[:, c]; index [k, C]
// keeps the rows chosen (as floats) for the backward. Ties keep the earlier row.
PSTAL_OP(topk_mean_forward) {
  int64_t T = args.i64(3, "T"), C = args.i64(4, "C"), k = args.i64(5, "k");
  PSTAL_CHECK(args, T >= 1 && C >= 0 && k >= 1 && k <= T, "need 1 <= k <= T, received k=" + std::to_string(k) + " T=" + std::to_string(T));
  float* out = args.buf(0, C, "out");
  float* index = args.buf(1, k * C, "index");
  const float* x = args.buf(2, T * C, "x");
  topk_mean_forward(TopkMeanForward{T, C, k, out, index, x});
  return args.env().Undefined();
}

// topk_mean_backward(dx, dy, index, T, C, k)
PSTAL_OP(topk_mean_backward) {
  int64_t T = args.i64(3, "T"), C = args.i64(4, "C"), k = args.i64(5, "k");
  PSTAL_CHECK(args, T >= 1 && k >= 1 && k <= T, "need 1 <= k <= T");
  float* dx = args.buf(0, T * C, "dx");
  const float* dy = args.buf(1, C, "dy");
  const float* index = args.buf(2, k * C, "index");
  topk_mean_backward(TopkMeanBackward{T, C, k, dx, dy, index});
  return args.env().Undefined();
}

}  // namespace pstal
