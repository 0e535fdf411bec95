// ---------------------------------------------------------------------------------------------
// optim.h: one Adam step in place (lib/nn/optim.ts).
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/optim.cc; the kernels behind these signatures are native/cpu/optim.cc (the reference) and
// native/cuda/optim.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// adam_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step)
struct AdamStep {
  int64_t n;
  double lr;
  double b1;
  double b2;
  double eps;
  double wd;
  int64_t step;
  float* p;
  const float* g;
  float* m;
  float* v;
};
void adam_step(const AdamStep& a);

}  // namespace pstal
