// boundary.cc: the arguments of boundary_adaptation (ops/boundary.h), read and checked once.
#include "ops/boundary.h"

#include "ops/postprocess_args.h"

namespace pstal {

// boundary_adaptation(rows Float64Array [n*4], iou_thr) -> Float64Array [n*4]
PSTAL_OP(boundary_adaptation) {
  int64_t len;
  const double* rows = post::f64_array(args, 0, "rows", &len);
  double thr = args.f64(1, "iou_thr");
  PSTAL_CHECK(args, std::isfinite(thr) && thr >= 0 && thr < 1, "iou_thr must be in [0, 1)");
  const int64_t n = post::check_rows(args, rows, len, "rows");
  return post::to_js(args.env(), boundary_adaptation(BoundaryAdaptation{rows, n, thr}));
}

}  // namespace pstal
