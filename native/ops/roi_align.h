// ---------------------------------------------------------------------------------------------
// roi_align.h: 1-D RoI align over time (lib/ops/roi_align.ts), forward and backward.
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/roi_align.cc; the kernels behind these signatures are native/cpu/roi_align.cc (the reference) and
// native/cuda/roi_align.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// roi_align_forward(out, x, rois Float32Array [R*2], T, D, bins, sampling_ratio, aligned)
struct RoiAlignForward {
  int64_t nr;
  int64_t T;
  int64_t D;
  int64_t bins;
  int64_t sr;
  bool aligned;
  const float* rois;
  int64_t R;
  float* out;
  const float* x;
};
void roi_align_forward(const RoiAlignForward& a);

// roi_align_backward(dx, dy, rois, T, D, bins, sampling_ratio, aligned): dx [T, D] (overwritten)
struct RoiAlignBackward {
  int64_t nr;
  int64_t T;
  int64_t D;
  int64_t bins;
  int64_t sr;
  bool aligned;
  const float* rois;
  int64_t R;
  float* dx;
  const float* dy;
};
void roi_align_backward(const RoiAlignBackward& a);

}  // namespace pstal
