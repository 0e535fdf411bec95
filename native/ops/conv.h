// ---------------------------------------------------------------------------------------------
// conv.h: conv1d over time on time-major activations (lib/ops/conv.ts), forward and backward.
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/conv.cc; the kernels behind these signatures are native/cpu/conv.cc (the reference) and
// native/cuda/conv.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// conv1d_forward(out, x, weight, bias | null, T, Cin, Cout, k, pad)
struct Conv1dForward {
  int64_t T;
  int64_t Cin;
  int64_t Cout;
  int64_t k;
  int64_t pad;
  int64_t T_out;
  float* out;
  const float* x;
  const float* w;
  const float* bias;
};
void conv1d_forward(const Conv1dForward& a);

// conv1d_backward(dx | null, dweight | null, dbias | null, dy, x, weight, T, Cin, Cout, k, pad)
struct Conv1dBackward {
  int64_t T;
  int64_t Cin;
  int64_t Cout;
  int64_t k;
  int64_t pad;
  int64_t T_out;
  float* dx;
  float* dw;
  float* db;
  const float* dy;
  const float* x;
  const float* w;
  // dweight / dbias added to (each value whole first, then added: a temporary and an axpy's bits),
  // for gradients summed straight into a parameter's .grad
  bool acc_w;
  bool acc_b;
};
void conv1d_backward(const Conv1dBackward& a);

}  // namespace pstal
