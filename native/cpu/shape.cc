// ---------------------------------------------------------------------------------------------
// shape.cc: the CPU kernels (the readable reference) of native/ops/shape.h, moving data without
// arithmetic: row gather (and its scatter-add backward), strided block copies (concat and slice
// along any axis, and their backwards), 2-D transpose.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>

#include "common/parallel.h"
#include "ops/shape.h"

namespace pstal {

// gather_rows_forward(out, x, index Int32Array, rows_x, cols): out[i] = x[index[i]]
void gather_rows_forward(const GatherRowsForward& op) {
  const auto& [n_idx, rows, cols, idx, out, x] = op;
  for (int64_t i = 0; i < n_idx; i++) std::copy(x + idx[i] * cols, x + (idx[i] + 1) * cols, out + i * cols);
}

// gather_rows_backward(dx, dy, index, rows_x, cols): dx = 0; dx[index[i]] += dy[i]
void gather_rows_backward(const GatherRowsBackward& op) {
  const auto& [n_idx, rows, cols, idx, dx, dy] = op;
  std::fill(dx, dx + rows * cols, 0.f);
  for (int64_t i = 0; i < n_idx; i++)
    for (int64_t j = 0; j < cols; j++) dx[idx[i] * cols + j] += dy[i * cols + j];
}

// block_copy(dst, src, outer, len, dst_stride, dst_off, src_stride, src_off, accumulate):
//   for o < outer, j < len: dst[o*dst_stride + dst_off + j] (+)= src[o*src_stride + src_off + j]
// Over the pool: the destination blocks (and, for few long blocks, their elements) are disjoint,
// so any split writes the same values.
void block_copy(const BlockCopy& op) {
  const auto& [outer, len, ds, doff, ss, soff, acc, dst, src] = op;
  if (outer <= 0 || len <= 0) return;
  const int64_t chunk = outer >= 8 ? len : std::max<int64_t>(1 << 14, len / 8);  // split long rows too
  const int64_t pieces = (len + chunk - 1) / chunk;
  auto copy = [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; w++) {
      const int64_t o = w / pieces, j0 = (w % pieces) * chunk, j1 = std::min(len, j0 + chunk);
      float* d = dst + o * ds + doff;
      const float* s = src + o * ss + soff;
      if (acc)
        for (int64_t j = j0; j < j1; j++) d[j] += s[j];
      else
        std::copy(s + j0, s + j1, d + j0);
    }
  };
  // destination blocks that overlap (accumulating with a stride under the length) add up in order
  if (acc && ds < len && outer > 1) copy(0, outer * pieces);
  else parallel_for(outer * pieces, std::max<int64_t>(1, (1 << 15) / chunk), copy);
}

// transpose2d(out, x, rows, cols): out [cols, rows]
void transpose2d(const Transpose2d& op) {
  const auto& [rows, cols, out, x] = op;
  constexpr int64_t B = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += B)
    for (int64_t j0 = 0; j0 < cols; j0 += B)
      for (int64_t i = i0; i < std::min(rows, i0 + B); i++)
        for (int64_t j = j0; j < std::min(cols, j0 + B); j++) out[j * rows + i] = x[i * cols + j];
}

}  // namespace pstal
