// ---------------------------------------------------------------------------------------------
// loss.cc: elementwise losses and their gradients; lib/ops/loss.ts applies weights and the
// reduction (mean / sum), so the focal-weighted BCE of SPEC §2 and the stage-2 smooth-L1 (§4)
// are compositions of these.
//   BCE       l = -(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch does
//   smooth L1 l = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = a - b
//   MSE       l = d^2
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>

#include "common/op.h"

namespace pstal {

enum Loss { BCE = 0, SMOOTH_L1 = 1, MSE = 2 };

// loss_forward(kind, out, a, b, n, beta)   (BCE: a = p, b = target)
PSTAL_OP(loss_forward) {
  int64_t kind = args.i64(0, "kind"), n = args.i64(4, "n");
  float beta = (float)args.f64(5, "beta");
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown loss kind " + std::to_string(kind));
  float* out = args.buf(1, n, "out");
  const float* a = args.buf(2, n, "a");
  const float* b = args.buf(3, n, "b");
  for (int64_t i = 0; i < n; i++) {
    if (kind == BCE) {
      float lp = std::max(std::log(a[i]), -100.f), lq = std::max(std::log(1.f - a[i]), -100.f);
      out[i] = -(b[i] * lp + (1.f - b[i]) * lq);
    } else {
      float d = a[i] - b[i], ad = std::fabs(d);
      out[i] = kind == MSE ? d * d : (ad < beta ? 0.5f * d * d / beta : ad - 0.5f * beta);
    }
  }
  return args.env().Undefined();
}

// loss_backward(kind, da, dout, a, b, n, beta): gradient with respect to a (for b it is -da, except BCE)
PSTAL_OP(loss_backward) {
  int64_t kind = args.i64(0, "kind"), n = args.i64(5, "n");
  float beta = (float)args.f64(6, "beta");
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown loss kind " + std::to_string(kind));
  float* da = args.buf(1, n, "da");
  const float* g = args.buf(2, n, "dout");
  const float* a = args.buf(3, n, "a");
  const float* b = args.buf(4, n, "b");
  for (int64_t i = 0; i < n; i++) {
    if (kind == BCE) {
      da[i] = g[i] * (a[i] - b[i]) / std::max((1.f - a[i]) * a[i], 1e-12f);
    } else {
      float d = a[i] - b[i];
      float dd = kind == MSE ? 2.f * d : (std::fabs(d) < beta ? d / beta : (d > 0 ? 1.f : (d < 0 ? -1.f : 0.f)));
      da[i] = g[i] * dd;
    }
  }
  return args.env().Undefined();
}

}  // namespace pstal
