// ---------------------------------------------------------------------------------------------
// optim.cc: one Adam step in place, exactly as torch.optim.Adam (weight decay added to the
// gradient, bias-corrected moments, eps added after the square root's correction):
//   g += wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// ---------------------------------------------------------------------------------------------
#include <cmath>

#include "common/parallel.h"
#include "ops/optim.h"

namespace pstal {

// adam_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step)
void adam_step(const AdamStep& op) {
  const auto& [n, lr, b1, b2, eps, wd, step, p, g, m, v] = op;
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
}

}  // namespace pstal
