// ---------------------------------------------------------------------------------------------
// roi_align.cu: the CUDA twin of native/cpu/roi_align.cc (the readable reference: same ops,
// arguments, checks and sampling rule). 1-D RoI align over time (SPEC §4): each proposal
// [start, end] (in snippets) of x [T, D] is divided into `bins` equal bins, each the mean of
// `grid` linearly interpolated samples, with torchvision's conventions along time:
//   aligned: coordinates shifted by -0.5; a sample at y < -1 or y > T is 0; y <= 0 reads row 0;
//   y >= T - 1 reads row T - 1; grid = sampling_ratio if > 0 else ceil(roi_length / bins);
//   unaligned RoIs are at least 1 long.
// out [R, bins, D].
//
// The RoIs come from JS as a host Float32Array: each RoI's geometry (start, bin width, grid) is
// computed on the host with the CPU's code and uploaded; the kernels run one thread per output
// element (r, b, d), consecutive d coalesced. Sample positions and the accumulation use
// explicitly rounded float operations (no fused multiply-add), in the CPU's order, so the
// forward is bit-identical to the CPU's (compiled without FMA, as the x86-64 baseline is).
// The backward scatters with atomicAdd into dx: several (r, b) read the same rows, so the order
// of the additions varies from run to run and dx differs from the CPU's by float32 rounding of
// that order (relative ~1e-7 per addition), and is not bitwise reproducible between runs.
// Both ops synchronise the stream before returning (they upload host data; see common.cuh).
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/roi_geometry.h"
#include "cuda/common.cuh"
#include "ops/roi_align.h"

namespace pstal {
namespace {

using RoiGeometry = roi::Geometry;
using roi::geometry;
using roi::interp;
using roi::Sample;

std::vector<RoiGeometry> geometries(const float* rois, int64_t R, int64_t bins, int64_t sr, bool aligned) {
  std::vector<RoiGeometry> g((size_t)R);
  for (int64_t r = 0; r < R; r++) g[(size_t)r] = geometry(rois[2 * r], rois[2 * r + 1], bins, sr, aligned);
  return g;
}

// Sample s of bin b: start + b * bin + (s + 0.5) * bin / grid, rounded as the CPU rounds it.
__device__ inline float sample_pos(const RoiGeometry& g, int64_t b, int64_t s) {
  return __fadd_rn(__fadd_rn(g.start, __fmul_rn((float)b, g.bin)), __fdiv_rn(__fmul_rn((float)s + 0.5f, g.bin), (float)g.grid));
}

__global__ void roi_align_forward_kernel(float* __restrict__ out, const float* __restrict__ x,
                                         const RoiGeometry* __restrict__ geo, int64_t R, int64_t T, int64_t D, int64_t bins) {
  const int64_t n = R * bins * D;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = idx % D, rb = idx / D, b = rb % bins, r = rb / bins;
    const RoiGeometry g = geo[r];
    float o = 0.f;
    for (int64_t s = 0; s < g.grid; s++) {
      Sample sm = interp(sample_pos(g, b, s), T);
      if (sm.wlo == 0.f && sm.whi == 0.f) continue;
      o = __fadd_rn(o, __fadd_rn(__fmul_rn(sm.wlo, x[sm.lo * D + d]), __fmul_rn(sm.whi, x[sm.hi * D + d])));
    }
    out[idx] = __fmul_rn(o, __fdiv_rn(1.f, (float)g.grid));
  }
}

__global__ void roi_align_backward_kernel(float* dx, const float* __restrict__ dy, const RoiGeometry* __restrict__ geo,
                                          int64_t R, int64_t T, int64_t D, int64_t bins) {
  const int64_t n = R * bins * D;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = idx % D, rb = idx / D, b = rb % bins, r = rb / bins;
    const RoiGeometry g = geo[r];
    const float inv = __fdiv_rn(1.f, (float)g.grid);
    const float gy = dy[idx];
    for (int64_t s = 0; s < g.grid; s++) {
      Sample sm = interp(sample_pos(g, b, s), T);
      if (sm.wlo == 0.f && sm.whi == 0.f) continue;
      atomicAdd(dx + sm.lo * D + d, __fmul_rn(__fmul_rn(sm.wlo, inv), gy));
      atomicAdd(dx + sm.hi * D + d, __fmul_rn(__fmul_rn(sm.whi, inv), gy));
    }
  }
}

}  // namespace


// roi_align_forward(out, x, rois Float32Array [R*2], T, D, bins, sampling_ratio, aligned)
void roi_align_forward(const RoiAlignForward& op) {
  const auto& [nr, T, D, bins, sr, aligned, rois, R, out, x] = op;
  if (R == 0) return;
  std::vector<RoiGeometry> g = geometries(rois, R, bins, sr, aligned);
  cuda::DeviceScratch geo = cuda::upload(g.data(), R);
  roi_align_forward_kernel<<<cuda::blocks_for(R * bins * D), 256, 0, cuda::stream()>>>(out, x, geo.as<RoiGeometry>(), R, T, D, bins);
  PSTAL_CUDA_LAUNCH();
  PSTAL_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));  // `g` is about to go
}

// roi_align_backward(dx, dy, rois, T, D, bins, sampling_ratio, aligned): dx [T, D] (overwritten)
void roi_align_backward(const RoiAlignBackward& op) {
  const auto& [nr, T, D, bins, sr, aligned, rois, R, dx, dy] = op;
  cudaStream_t st = cuda::stream();
  PSTAL_CUDA_CHECK(cudaMemsetAsync(dx, 0, (size_t)(T * D) * sizeof(float), st));
  if (R == 0) return;
  std::vector<RoiGeometry> g = geometries(rois, R, bins, sr, aligned);
  cuda::DeviceScratch geo = cuda::upload(g.data(), R);
  roi_align_backward_kernel<<<cuda::blocks_for(R * bins * D), 256, 0, st>>>(dx, dy, geo.as<RoiGeometry>(), R, T, D, bins);
  PSTAL_CUDA_LAUNCH();
  PSTAL_CUDA_CHECK(cudaStreamSynchronize(st));  // `g` is about to go
}

}  // namespace pstal
