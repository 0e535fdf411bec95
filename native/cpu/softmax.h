// softmax.h: the softmax row kernels attention uses (native/cpu/norm.cc, where the softmax op's
// own row loops live too).
#pragma once
#include <cstdint>

namespace pstal {
// In place on `rows` rows of n: y = exp(y - max y), inv[r] = 1 / row r's sum (the softmax's
// normalisation, left to the caller: attention applies it in its dropout pass, apply_dropout_mark).
// The same bits as row by row; faster (the double sums of four rows run side by side).
void softmax_rows_exp(float* y, int64_t rows, int64_t n, float* inv);
// softmax_rows_exp, then each row times its inv: a softmax over each row, in place.
void softmax_rows(float* y, int64_t rows, int64_t n, float* inv);
}  // namespace pstal
