// softmax.h: row kernels shared by the softmax op and attention.
#pragma once
#include <cstdint>

namespace pstal {
void softmax_row(float* y, const float* x, int64_t n, bool log);
// The softmax's first passes: y = exp(x - max x); returns 1 / sum(y), by which softmax_row
// multiplies y (attention does that in its dropout pass instead, apply_dropout_mark).
float softmax_row_exp(float* y, const float* x, int64_t n);
void softmax_row_backward(float* dx, const float* dy, const float* y, int64_t n, bool log);
}  // namespace pstal
