// shape.cc: the arguments of the ops of ops/shape.h, read and checked once for both addons.
#include "ops/shape.h"

#include <string>

#include "common/op.h"

namespace pstal {

// gather_rows_forward(out, x, index Int32Array, rows_x, cols): out[i] = x[index[i]]
PSTAL_OP(gather_rows_forward) {
  int64_t n_idx, rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  const int32_t* idx = args.i32(2, "index", &n_idx);
  float* out = args.buf(0, n_idx * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  for (int64_t i = 0; i < n_idx; i++)
    PSTAL_CHECK(args, idx[i] >= 0 && idx[i] < rows,
                "index " + std::to_string(idx[i]) + " at position " + std::to_string(i) + " is out of range for " +
                    std::to_string(rows) + " rows");
  gather_rows_forward(GatherRowsForward{n_idx, rows, cols, idx, out, x});
  return args.env().Undefined();
}

// gather_rows_backward(dx, dy, index, rows_x, cols): dx = 0; dx[index[i]] += dy[i]
PSTAL_OP(gather_rows_backward) {
  int64_t n_idx, rows = args.i64(3, "rows"), cols = args.i64(4, "cols");
  const int32_t* idx = args.i32(2, "index", &n_idx);
  float* dx = args.buf(0, rows * cols, "dx");
  const float* dy = args.buf(1, n_idx * cols, "dy");
  for (int64_t i = 0; i < n_idx; i++)
    PSTAL_CHECK(args, idx[i] >= 0 && idx[i] < rows, "index " + std::to_string(idx[i]) + " out of range");
  gather_rows_backward(GatherRowsBackward{n_idx, rows, cols, idx, dx, dy});
  return args.env().Undefined();
}

// block_copy(dst, src, outer, len, dst_stride, dst_off, src_stride, src_off, accumulate):
//   for o < outer, j < len: dst[o*dst_stride + dst_off + j] (+)= src[o*src_stride + src_off + j]
PSTAL_OP(block_copy) {
  int64_t outer = args.i64(2, "outer"), len = args.i64(3, "len"), ds = args.i64(4, "dst_stride"), doff = args.i64(5, "dst_off"),
          ss = args.i64(6, "src_stride"), soff = args.i64(7, "src_off");
  bool acc = args.flag(8, "accumulate");
  PSTAL_CHECK(args, outer >= 0 && len >= 0 && ds >= 0 && doff >= 0 && ss >= 0 && soff >= 0, "negative block geometry");
  if (outer == 0 || len == 0) return args.env().Undefined();
  // Accumulating into overlapping destination blocks would be summed in order on the CPU but race
  // on CUDA (blocks in parallel): refused on both, so the backends cannot disagree.
  PSTAL_CHECK(args, !acc || outer == 1 || ds >= len,
              "accumulate: the destination blocks overlap (dst_stride " + std::to_string(ds) + " < len " + std::to_string(len) + ")");
  float* dst = args.buf(0, (outer - 1) * ds + doff + len, "dst");
  const float* src = args.buf(1, (outer - 1) * ss + soff + len, "src");
  block_copy(BlockCopy{outer, len, ds, doff, ss, soff, acc, dst, src});
  return args.env().Undefined();
}

// transpose2d(out, x, rows, cols): out [cols, rows]
PSTAL_OP(transpose2d) {
  int64_t rows = args.i64(2, "rows"), cols = args.i64(3, "cols");
  float* out = args.buf(0, rows * cols, "out");
  const float* x = args.buf(1, rows * cols, "x");
  transpose2d(Transpose2d{rows, cols, out, x});
  return args.env().Undefined();
}

}  // namespace pstal
