// ---------------------------------------------------------------------------------------------
// optim.cu: the CUDA twin of native/cpu/optim.cc (the readable reference): one Adam step in place,
// exactly as torch.optim.Adam (weight decay added to the gradient, bias-corrected moments, eps
// added after the square root's correction):
//   g += wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Same op name, argument order, checks and error messages as the CPU file. The step constants are
// computed on the host in double exactly as the CPU does; the per-element float operations are
// the CPU's, written with __fmul_rn / __fadd_rn so nvcc does not contract them into FMAs (the CPU
// build has none), which keeps every parameter bitwise equal to the CPU's after a step.
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <string>

#include "cuda/common.cuh"
#include "ops/optim.h"

namespace pstal {
namespace {

__global__ void adam_kernel(float* p, const float* g, float* m, float* v, int64_t n, float step_size, float bc2, float b1,
                            float b2, float eps, float wd) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float pi = p[i];
    float gi = __fadd_rn(g[i], __fmul_rn(wd, pi));
    float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.f - b1, gi));
    float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.f - b2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    p[i] = __fsub_rn(pi, __fdiv_rn(__fmul_rn(step_size, mi), __fadd_rn(__fdiv_rn(sqrtf(vi), bc2), eps)));
  }
}

}  // namespace

// adam_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step)
void adam_step(const AdamStep& op) {
  const auto& [n, lr, b1, b2, eps, wd, step, p, g, m, v] = op;
  float step_size = (float)(lr / (1.0 - std::pow(b1, (double)step)));
  float bc2 = (float)std::sqrt(1.0 - std::pow(b2, (double)step));
  float fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps, fwd = (float)wd;
  if (n > 0) {
    adam_kernel<<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(p, g, m, v, n, step_size, bc2, fb1, fb2, feps, fwd);
    PSTAL_CUDA_LAUNCH();
  }
}

}  // namespace pstal
