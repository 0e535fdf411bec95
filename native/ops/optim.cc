// optim.cc: the arguments of the ops of ops/optim.h, read and checked once for both addons.
#include "ops/optim.h"

#include <string>
#include <vector>

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

// adam_step_many(sizes [K], lr, beta1, beta2, eps, weight_decay, step, p_0, g_0, m_0, v_0, p_1, ...):
// adam_step for K parameters in one call (an optimizer step is one native call, not one a
// parameter): each the backend's adam_step, in order, the same bits.
PSTAL_OP(adam_step_many) {
  std::vector<int64_t> sizes = args.ints(0, "sizes");
  double lr = args.f64(1, "lr"), b1 = args.f64(2, "beta1"), b2 = args.f64(3, "beta2"), eps = args.f64(4, "eps"),
         wd = args.f64(5, "weight_decay");
  int64_t step = args.i64(6, "step");
  PSTAL_CHECK(args, step >= 1, "step must be >= 1");
  PSTAL_CHECK(args, args.count() == 7 + 4 * sizes.size(),
              "expected 4 buffers (param, grad, m, v) for each of the " + std::to_string(sizes.size()) + " sizes");
  std::vector<AdamStep> steps;
  steps.reserve(sizes.size());
  for (size_t k = 0; k < sizes.size(); k++) {
    int64_t n = sizes[k];
    PSTAL_CHECK(args, n >= 0, "sizes must be non-negative");
    size_t at = 7 + 4 * k;
    float* p = args.buf(at, n, "param");
    const float* g = args.buf(at + 1, n, "grad");
    float* m = args.buf(at + 2, n, "m");
    float* v = args.buf(at + 3, n, "v");
    PSTAL_CHECK(args, p != g && p != m && p != v && g != m && g != v && m != v, "param, grad, m and v must be distinct buffers");
    steps.push_back(AdamStep{n, lr, b1, b2, eps, wd, step, p, g, m, v});
  }
  for (const AdamStep& s : steps) adam_step(s);  // checked whole before any update
  return args.env().Undefined();
}

}  // namespace pstal
