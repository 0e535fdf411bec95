// optim.cc: the arguments of the ops of ops/optim.h, read and checked once for both addons.
#include "ops/optim.h"

#include <string>

#include "common/op.h"

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
  adam_step(AdamStep{n, lr, b1, b2, eps, wd, step, p, g, m, v});
  return args.env().Undefined();
}

}  // namespace pstal
