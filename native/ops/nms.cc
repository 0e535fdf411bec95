// nms.cc: the arguments of soft_nms (ops/nms.h), read and checked once for both addons.
#include "ops/nms.h"

#include "ops/postprocess_args.h"

namespace pstal {

// soft_nms(rows Float64Array [n*4], method, sigma, iou_thr, plus_one) -> Float64Array [n*4]
PSTAL_OP(soft_nms) {
  int64_t len;
  const double* rows = post::f64_array(args, 0, "rows", &len);
  int64_t method = args.i64(1, "method");
  NmsParams p{(int)method, args.f64(2, "sigma"), args.f64(3, "iou_thr"), args.flag(4, "plus_one") ? 1.0 : 0.0};
  PSTAL_CHECK(args, method >= 0 && method <= 2, "method must be 0 (gaussian), 1 (linear) or 2 (hard)");
  PSTAL_CHECK(args, std::isfinite(p.sigma) && p.sigma > 0, "sigma must be positive");
  PSTAL_CHECK(args, std::isfinite(p.iou_thr) && p.iou_thr >= 0, "iou_thr must be a non-negative number");
  const int64_t n = post::check_rows(args, rows, len, "rows");
  return post::to_js(args.env(), soft_nms(SoftNms{rows, n, p}));
}

}  // namespace pstal
