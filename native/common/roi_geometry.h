// ---------------------------------------------------------------------------------------------
// roi_geometry.h: the geometry of 1-D RoI align (SPEC §4, torchvision's conventions along time),
// one definition for native/cpu/roi_align.cc and native/cuda/roi_align.cu (the bounds are checked
// to be finite once, in native/ops/roi_align.cc).
// ---------------------------------------------------------------------------------------------
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "common/hd.h"

namespace pstal {
namespace roi {

struct Geometry {
  float start, bin;
  int64_t grid;
};

// aligned: coordinates shifted by -0.5; unaligned RoIs are at least 1 long;
// grid = sampling_ratio if > 0 else ceil(roi_length / bins).
inline Geometry geometry(float s, float e, int64_t bins, int64_t sampling_ratio, bool aligned) {
  float off = aligned ? 0.5f : 0.f;
  float rs = s - off, re = e - off;
  float len = re - rs;
  if (!aligned) len = std::max(len, 1.f);
  float bin = len / (float)bins;
  int64_t grid = sampling_ratio > 0 ? sampling_ratio : (int64_t)std::ceil(len / (float)bins);
  return {rs, bin, std::max<int64_t>(grid, 1)};
}

struct Sample {
  int64_t lo, hi;
  float wlo, whi;
};

// The interpolation rows and weights of position y: weights 0 outside [-1, T] (and for NaN);
// y <= 0 reads row 0, y >= T - 1 reads row T - 1.
PSTAL_HD inline Sample interp(float y, int64_t T) {
  if (!(y >= -1.f) || y > (float)T) return {0, 0, 0.f, 0.f};
  if (y <= 0.f) y = 0.f;
  int64_t lo = (int64_t)y, hi;
  if (lo >= T - 1) {
    hi = lo = T - 1;
    y = (float)lo;
  } else {
    hi = lo + 1;
  }
  float l = y - (float)lo;
  return {lo, hi, 1.f - l, l};
}

}  // namespace roi
}  // namespace pstal
