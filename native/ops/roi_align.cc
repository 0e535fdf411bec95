// roi_align.cc: the arguments of the ops of ops/roi_align.h, read and checked once for both addons.
#include "ops/roi_align.h"

#include <cmath>
#include <string>

#include "common/op.h"

namespace pstal {

// A NaN or infinite bound would turn into an out-of-range row index in roi::interp().
static void check_finite_rois(Args& args, const float* rois, int64_t R) {
  for (int64_t r = 0; r < R; r++)
    PSTAL_CHECK(args, std::isfinite(rois[2 * r]) && std::isfinite(rois[2 * r + 1]), "roi " + std::to_string(r) + " is not finite");
}

// roi_align_forward(out, x, rois Float32Array [R*2], T, D, bins, sampling_ratio, aligned)
PSTAL_OP(roi_align_forward) {
  int64_t nr, T = args.i64(3, "T"), D = args.i64(4, "D"), bins = args.i64(5, "bins"), sr = args.i64(6, "sampling_ratio");
  bool aligned = args.flag(7, "aligned");
  const float* rois = args.f32(2, "rois", &nr);
  PSTAL_CHECK(args, nr % 2 == 0, "rois must hold [start, end] pairs");
  PSTAL_CHECK(args, T >= 1 && D >= 1 && bins >= 1, "need T >= 1, D >= 1, bins >= 1");
  int64_t R = nr / 2;
  check_finite_rois(args, rois, R);
  float* out = args.buf(0, R * bins * D, "out");
  const float* x = args.buf(1, T * D, "x");
  roi_align_forward(RoiAlignForward{nr, T, D, bins, sr, aligned, rois, R, out, x});
  return args.env().Undefined();
}

// roi_align_backward(dx, dy, rois, T, D, bins, sampling_ratio, aligned): dx [T, D] (overwritten)
PSTAL_OP(roi_align_backward) {
  int64_t nr, T = args.i64(3, "T"), D = args.i64(4, "D"), bins = args.i64(5, "bins"), sr = args.i64(6, "sampling_ratio");
  bool aligned = args.flag(7, "aligned");
  const float* rois = args.f32(2, "rois", &nr);
  PSTAL_CHECK(args, nr % 2 == 0 && T >= 1 && D >= 1 && bins >= 1, "invalid roi_align geometry");
  int64_t R = nr / 2;
  check_finite_rois(args, rois, R);
  float* dx = args.buf(0, T * D, "dx");
  const float* dy = args.buf(1, R * bins * D, "dy");
  roi_align_backward(RoiAlignBackward{nr, T, D, bins, sr, aligned, rois, R, dx, dy});
  return args.env().Undefined();
}

}  // namespace pstal
