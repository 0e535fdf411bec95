// ---------------------------------------------------------------------------------------------
// adam.cc: one Adam step in place, exactly as torch.optim.Adam (weight decay added to the
// gradient, bias-corrected moments, eps added after the square root's correction):
//   g += wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// ---------------------------------------------------------------------------------------------
#include <cmath>

#include "common/op.h"
#include "common/parallel.h"

namespace pstal {

// adam_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step)
PSTAL_OP(adam_step) {
  int64_t n = args.i64(4, "n");
  double lr = args.f64(5, "lr"), b1 = args.f64(6, "beta1"), b2 = args.f64(7, "beta2"), eps = args.f64(8, "eps"),
         wd = args.f64(9, "weight_decay");
  int64_t step = args.i64(10, "step");
  PSTAL_CHECK(args, step >= 1, "step must be >= 1");
  float* p = args.buf(0, n, "param");
  const float* g = args.buf(1, n, "grad");
  float* m = args.buf(2, n, "m");
  float* v = args.buf(3, n, "v");
  float step_size = (float)(lr / (1.0 - std::pow(b1, (double)step)));
  float bc2 = (float)std::sqrt(1.0 - std::pow(b2, (double)step));
  float fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps, fwd = (float)wd;
  parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      float gi = g[i] + fwd * p[i];
      m[i] = fb1 * m[i] + (1.f - fb1) * gi;
      v[i] = fb2 * v[i] + (1.f - fb2) * gi * gi;
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2 + feps);
    }
  });
  return args.env().Undefined();
}

}  // namespace pstal
