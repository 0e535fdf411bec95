// ---------------------------------------------------------------------------------------------
// conv.cc: 1-D convolution over time with PyTorch's weight layout [Cout, Cin, k], on our
// time-major activations x [T, Cin] -> y [T_out, Cout], T_out = T + 2 pad - k + 1.
//
// im2col turns it into one GEMM: X_col[t, i*k + j] = x[t + j - pad, i] (zero outside the video),
// so W viewed as [Cout, Cin*k] multiplies X_col directly and dW = dy^T X_col needs no re-layout.
// kernel 1 (the classifier, the stage-2 heads) skips im2col. SPEC §2 step 3 uses k = 3, pad = 1.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cstring>

#include "common/parallel.h"
#include "cpu/gemm.h"
#include "cpu/scratch.h"
#include "ops/conv.h"
#include "ops/matmul.h"

namespace pstal {
namespace {

thread_local Scratch col_scratch;
thread_local Scratch bias_scratch;  // dbias summed before it is added (acc_b)

void im2col(float* col, const float* x, int64_t T, int64_t Cin, int64_t k, int64_t pad, int64_t T_out) {
  parallel_for(T_out, 8, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      float* row = col + t * Cin * k;
      for (int64_t j = 0; j < k; j++) {
        int64_t src = t + j - pad;
        if (src < 0 || src >= T)
          for (int64_t i = 0; i < Cin; i++) row[i * k + j] = 0.f;
        else {
          const float* xs = x + src * Cin;
          for (int64_t i = 0; i < Cin; i++) row[i * k + j] = xs[i];
        }
      }
    }
  });
}

}  // namespace

// conv1d_forward(out, x, weight, bias | null, T, Cin, Cout, k, pad)
void conv1d_forward(const Conv1dForward& op) {
  const auto& [T, Cin, Cout, k, pad, T_out, out, x, w, bias] = op;
  const float* col = x;
  if (!(k == 1 && pad == 0)) {
    float* c = col_scratch.get((size_t)(T_out * Cin * k));
    im2col(c, x, T, Cin, k, pad, T_out);
    col = c;
  }
  float beta = 0.f;
  if (bias) {
    for (int64_t t = 0; t < T_out; t++) std::memcpy(out + t * Cout, bias, (size_t)Cout * sizeof(float));
    beta = 1.f;
  }
  sgemm(false, true, T_out, Cout, Cin * k, 1.f, col, Cin * k, w, Cin * k, beta, out, Cout);
}

// conv1d_backward(dx | null, dweight | null, dbias | null, dy, x, weight, T, Cin, Cout, k, pad)
void conv1d_backward(const Conv1dBackward& op) {
  const auto& [T, Cin, Cout, k, pad, T_out, dx, dw, db, dy, x, w, acc_w, acc_b] = op;
  bool direct = k == 1 && pad == 0;
  if (db) {
    float* s = acc_b ? bias_scratch.get((size_t)Cout) : db;
    for (int64_t o = 0; o < Cout; o++) s[o] = 0.f;
    for (int64_t t = 0; t < T_out; t++)
      for (int64_t o = 0; o < Cout; o++) s[o] += dy[t * Cout + o];
    if (acc_b)
      for (int64_t o = 0; o < Cout; o++) db[o] += s[o];
  }
  if (dw) {
    const float* col = x;
    if (!direct) {
      float* c = col_scratch.get((size_t)(T_out * Cin * k));
      im2col(c, x, T, Cin, k, pad, T_out);
      col = c;
    }
    // accumulate: matmul_forward's (the same product, summed whole, then added)
    if (acc_w) matmul_forward(MatmulForward{1, Cout, Cin * k, T_out, true, false, 0, 0, 0.0, dw, dy, col, true});
    else sgemm(true, false, Cout, Cin * k, T_out, 1.f, dy, Cout, col, Cin * k, 0.f, dw, Cin * k);
  }
  if (dx) {
    if (direct) {
      sgemm(false, false, T, Cin, Cout, 1.f, dy, Cout, w, Cin, 0.f, dx, Cin);
    } else {
      float* dcol = col_scratch.get((size_t)(T_out * Cin * k));
      sgemm(false, false, T_out, Cin * k, Cout, 1.f, dy, Cout, w, Cin * k, 0.f, dcol, Cin * k);
      // col2im: each input row gathers from the (t, j) pairs that read it, so rows are independent.
      parallel_for(T, 8, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; s++) {
          float* dxs = dx + s * Cin;
          std::fill(dxs, dxs + Cin, 0.f);
          for (int64_t j = 0; j < k; j++) {
            int64_t t = s - j + pad;
            if (t < 0 || t >= T_out) continue;
            const float* row = dcol + t * Cin * k;
            for (int64_t i = 0; i < Cin; i++) dxs[i] += row[i * k + j];
          }
        }
      });
    }
  }
}

}  // namespace pstal
