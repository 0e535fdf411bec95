// ---------------------------------------------------------------------------------------------
// reduce.h: sum / mean / max over an axis and the top-k mean over time (lib/ops/reduce.ts).
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/reduce.cc; the kernels behind these signatures are native/cpu/reduce.cc (the reference) and
// native/cuda/reduce.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// reduce_forward / reduce_backward kinds (lib/ops/reduce.ts KIND)
enum Reduce { SUM = 0, MEAN = 1, MAX = 2 };

// reduce_forward(kind, out, argmax, x, outer, len, inner[, axis_len, start]): argmax (a buffer of
// [outer, inner] indices stored as floats) is written for MAX only and may be null otherwise.
// With axis_len and start, x is [outer, axis_len, inner] and the reduction runs over positions
// [start, start + len) of its axis: a slice's reduction without copying the slice out.
struct ReduceForward {
  int64_t kind;
  int64_t outer;
  int64_t len;
  int64_t inner;
  float* out;
  float* arg;
  const float* x;       // the first reduced position of outer block 0
  int64_t x_stride;     // elements from one outer block of x to the next (axis_len * inner)
};
void reduce_forward(const ReduceForward& a);

// reduce_backward(kind, dx, dy, argmax, outer, len, inner)
struct ReduceBackward {
  int64_t kind;
  int64_t outer;
  int64_t len;
  int64_t inner;
  float* dx;
  const float* dy;
  const float* arg;
};
void reduce_backward(const ReduceBackward& a);

// topk_mean_forward(out, index, x, T, C, k): out[c] = mean of the k largest x[:, c]; index [k, C]
// keeps the rows chosen (as floats) for the backward. Ties keep the earlier row.
struct TopkMeanForward {
  int64_t T;
  int64_t C;
  int64_t k;
  float* out;
  float* index;
  const float* x;
};
void topk_mean_forward(const TopkMeanForward& a);

// topk_mean_backward(dx, dy, index, T, C, k)
struct TopkMeanBackward {
  int64_t T;
  int64_t C;
  int64_t k;
  float* dx;
  const float* dy;
  const float* index;
};
void topk_mean_backward(const TopkMeanBackward& a);

}  // namespace pstal
