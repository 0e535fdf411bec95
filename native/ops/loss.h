// ---------------------------------------------------------------------------------------------
// loss.h: elementwise losses and their backward (lib/ops/loss.ts).
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/loss.cc; the kernels behind these signatures are native/cpu/loss.cc (the reference) and
// native/cuda/loss.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// loss_forward(kind, out, a, b, n, beta)   (BCE: a = p, b = target)
struct LossForward {
  int64_t kind;
  int64_t n;
  float beta;
  float* out;
  const float* a;
  const float* b;
};
void loss_forward(const LossForward& a);

// loss_backward(kind, da, dout, a, b, n, beta): gradient with respect to a (for b it is -da, except BCE)
struct LossBackward {
  int64_t kind;
  int64_t n;
  float beta;
  float* da;
  const float* g;
  const float* a;
  const float* b;
};
void loss_backward(const LossBackward& a);

}  // namespace pstal
