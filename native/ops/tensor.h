// tensor.h: what lib/tensor/tensor.ts needs of a backend beyond NativeBuffer: the anomaly check
// and buffer-to-buffer copies. Kernels: native/cpu/tensor.cc, native/cuda/tensor.cu.
#pragma once
#include <cstdint>

namespace pstal {

// Index of the first NaN or Inf in x[0, n), or -1.
struct FirstNonfinite {
  const float* x;
  int64_t n;
};
int64_t first_nonfinite(const FirstNonfinite& a);

// dst[dst_offset + i] = src[src_offset + i] for i < n.
struct Copy {
  const float* src;
  int64_t src_offset;
  float* dst;
  int64_t dst_offset;
  int64_t n;
};
void copy(const Copy& a);

}  // namespace pstal
