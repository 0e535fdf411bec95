// tensor.cc: the CPU kernels of native/ops/tensor.h.
#include "ops/tensor.h"

#include <cmath>

namespace pstal {

int64_t first_nonfinite(const FirstNonfinite& a) {
  for (int64_t i = 0; i < a.n; i++)
    if (!std::isfinite(a.x[i])) return i;
  return -1;
}

void copy(const Copy& a) {
  for (int64_t i = 0; i < a.n; i++) a.dst[a.dst_offset + i] = a.src[a.src_offset + i];
}

}  // namespace pstal
