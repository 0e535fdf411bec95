// softmax.h: row kernels shared by the softmax op and attention.
#pragma once
#include <cstdint>

namespace pstal {
void softmax_row(float* y, const float* x, int64_t n, bool log);
void softmax_row_backward(float* dx, const float* dy, const float* y, int64_t n, bool log);
}  // namespace pstal
