// ---------------------------------------------------------------------------------------------
// roi_align.cc: 1-D RoI align over time (SPEC §4): each proposal [start, end] (in snippets) of a
// feature map x [T, D] is divided into `bins` equal bins; each bin averages `grid` samples taken
// by linear interpolation, with torchvision's roi_align conventions along the time axis:
//   aligned: coordinates shifted by -0.5; a sample at y < -1 or y > T is 0; y <= 0 reads row 0;
//   y >= T - 1 reads row T - 1; grid = sampling_ratio if > 0 else ceil(roi_length / bins);
//   unaligned RoIs are at least 1 long.
// out [R, bins, D]. The backward scatters each sample's weights back onto the two rows it read.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>

#include "common/parallel.h"
#include "common/roi_geometry.h"
#include "ops/roi_align.h"

namespace pstal {
using roi::geometry;
using roi::interp;
using roi::Sample;
using RoiGeometry = roi::Geometry;

// roi_align_forward(out, x, rois Float32Array [R*2], T, D, bins, sampling_ratio, aligned)
void roi_align_forward(const RoiAlignForward& op) {
  const auto& [nr, T, D, bins, sr, aligned, rois, R, out, x] = op;
  parallel_for(R, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      RoiGeometry g = geometry(rois[2 * r], rois[2 * r + 1], bins, sr, aligned);
      for (int64_t b = 0; b < bins; b++) {
        float* o = out + (r * bins + b) * D;
        std::fill(o, o + D, 0.f);
        for (int64_t s = 0; s < g.grid; s++) {
          float y = g.start + (float)b * g.bin + ((float)s + 0.5f) * g.bin / (float)g.grid;
          Sample sm = interp(y, T);
          if (sm.wlo == 0.f && sm.whi == 0.f) continue;
          const float* xl = x + sm.lo * D;
          const float* xh = x + sm.hi * D;
          for (int64_t d = 0; d < D; d++) o[d] += sm.wlo * xl[d] + sm.whi * xh[d];
        }
        float inv = 1.f / (float)g.grid;
        for (int64_t d = 0; d < D; d++) o[d] *= inv;
      }
    }
  });
}

// roi_align_backward(dx, dy, rois, T, D, bins, sampling_ratio, aligned): dx [T, D] (overwritten)
void roi_align_backward(const RoiAlignBackward& op) {
  const auto& [nr, T, D, bins, sr, aligned, rois, R, dx, dy] = op;
  std::fill(dx, dx + T * D, 0.f);
  for (int64_t r = 0; r < R; r++) {
    RoiGeometry g = geometry(rois[2 * r], rois[2 * r + 1], bins, sr, aligned);
    float inv = 1.f / (float)g.grid;
    for (int64_t b = 0; b < bins; b++) {
      const float* gy = dy + (r * bins + b) * D;
      for (int64_t s = 0; s < g.grid; s++) {
        float y = g.start + (float)b * g.bin + ((float)s + 0.5f) * g.bin / (float)g.grid;
        Sample sm = interp(y, T);
        if (sm.wlo == 0.f && sm.whi == 0.f) continue;
        float* dl = dx + sm.lo * D;
        float* dh = dx + sm.hi * D;
        for (int64_t d = 0; d < D; d++) {
          dl[d] += sm.wlo * inv * gy[d];
          dh[d] += sm.whi * inv * gy[d];
        }
      }
    }
  }
}

}  // namespace pstal
