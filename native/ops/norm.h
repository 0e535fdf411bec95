// ---------------------------------------------------------------------------------------------
// norm.h: normalisations over the last axis of [rows, cols] (lib/ops/norm.ts): softmax and
// log-softmax, LayerNorm, row L2 normalisation, forward and backward.
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/norm.cc; the kernels behind these signatures are native/cpu/norm.cc (the reference) and
// native/cuda/norm.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>



namespace pstal {
// softmax_forward(out, x, rows, cols, log)
struct SoftmaxForward {
  int64_t rows;
  int64_t cols;
  bool log;
  float* y;
  const float* x;
};
void softmax_forward(const SoftmaxForward& a);

// softmax_backward(dx, dy, y, rows, cols, log): y is the forward output
struct SoftmaxBackward {
  int64_t rows;
  int64_t cols;
  bool log;
  float* dx;
  const float* dy;
  const float* y;
};
void softmax_backward(const SoftmaxBackward& a);

// layernorm_forward(out, mean, rstd, x, weight, bias, rows, cols, eps)
struct LayernormForward {
  int64_t rows;
  int64_t cols;
  float eps;
  float* out;
  float* mean;
  float* rstd;
  const float* x;
  const float* w;
  const float* b;
};
void layernorm_forward(const LayernormForward& a);

// layernorm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight, rows, cols, accumulate)
//   accumulate: dweight and dbias are added to (each sum rounded to float first, then added: the
//   bits of a temporary and an axpy), for gradients summed straight into a parameter's .grad.
struct LayernormBackward {
  int64_t rows;
  int64_t cols;
  float* dx;
  float* dw;
  float* db;
  const float* dy;
  const float* x;
  const float* mean;
  const float* rstd;
  const float* w;
  bool accumulate;
};
void layernorm_backward(const LayernormBackward& a);

// l2norm_forward(out, norm, x, rows, cols, eps): out = x / max(||x||, eps) per row
struct L2normForward {
  int64_t rows;
  int64_t cols;
  float eps;
  float* out;
  float* norm;
  const float* x;
};
void l2norm_forward(const L2normForward& a);

// l2norm_backward(dx, dy, x, norm, rows, cols, eps)
struct L2normBackward {
  int64_t rows;
  int64_t cols;
  float eps;
  float* dx;
  const float* dy;
  const float* x;
  const float* norm;
};
void l2norm_backward(const L2normBackward& a);

}  // namespace pstal
