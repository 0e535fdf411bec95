// softmax.h: row kernels shared by the softmax op and attention.
#pragma once
#include <cstdint>

namespace pstal {
void softmax_row(float* y, const float* x, int64_t n, bool log);
// The softmax's first passes: y = exp(x - max x); returns 1 / sum(y), by which softmax_row
// multiplies y (attention does that in its dropout pass instead, apply_dropout_mark).
float softmax_row_exp(float* y, const float* x, int64_t n);
// softmax_row_exp in place on `rows` rows of n (the same bits), inv[r] = 1 / row r's sum; faster
// than row by row (the double sums of four rows run side by side).
void softmax_rows_exp(float* y, int64_t rows, int64_t n, float* inv);
void softmax_row_backward(float* dx, const float* dy, const float* y, int64_t n, bool log);
}  // namespace pstal
