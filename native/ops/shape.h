// ---------------------------------------------------------------------------------------------
// shape.h: moving values without arithmetic (lib/ops/shape.ts): row gather and its scatter-add backward,
// strided block copies (concat / slice), 2-D transpose.
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/shape.cc; the kernels behind these signatures are native/cpu/shape.cc (the reference) and
// native/cuda/shape.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// gather_rows_forward(out, x, index Int32Array, rows_x, cols): out[i] = x[index[i]]
struct GatherRowsForward {
  int64_t n_idx;
  int64_t rows;
  int64_t cols;
  const int32_t* idx;
  float* out;
  const float* x;
};
void gather_rows_forward(const GatherRowsForward& a);

// gather_rows_backward(dx, dy, index, rows_x, cols): dx = 0; dx[index[i]] += dy[i]
struct GatherRowsBackward {
  int64_t n_idx;
  int64_t rows;
  int64_t cols;
  const int32_t* idx;
  float* dx;
  const float* dy;
};
void gather_rows_backward(const GatherRowsBackward& a);

// block_copy(dst, src, outer, len, dst_stride, dst_off, src_stride, src_off, accumulate):
//   for o < outer, j < len: dst[o*dst_stride + dst_off + j] (+)= src[o*src_stride + src_off + j]
struct BlockCopy {
  int64_t outer;
  int64_t len;
  int64_t ds;
  int64_t doff;
  int64_t ss;
  int64_t soff;
  bool acc;
  float* dst;
  const float* src;
};
void block_copy(const BlockCopy& a);

// transpose2d(out, x, rows, cols): out [cols, rows]
struct Transpose2d {
  int64_t rows;
  int64_t cols;
  float* out;
  const float* x;
};
void transpose2d(const Transpose2d& a);

}  // namespace pstal
