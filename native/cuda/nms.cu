// ---------------------------------------------------------------------------------------------
// nms.cu: the CUDA twin of native/cpu/nms.cc (the readable reference: the same op, host-array
// arguments, checks, and output rows in the same order; the algorithm is documented there).
// Class-wise soft-NMS (SPEC §2 "final stage-1 detections", §4 inference, §5).
//
// The loop is sequential within a class (each selection decides the next), so a class is one
// block and its steps run in order; within a step the decay of every remaining row and the
// argmax of the next step are parallel over the block's threads (a strided pass, then a
// shuffle + shared-memory reduction that keeps the first maximum, as np.argmax). Thread 0 does the
// swap of rows q and m and writes the kept row, exactly as the CPU does, so later ties resolve the
// same way. Classes are independent blocks. Groups (classes in order of first appearance) are
// formed on the host with the CPU's helper and laid out contiguously, so the output is the CPU's.
//
// Numerics: every float64 operation is explicitly rounded (no fused multiply-add), as the CPU
// compiles nms.cc with contraction off. The one difference is exp() in the gaussian decay:
// CUDA's double exp is within 1 ulp of the exact value, glibc's within ~0.5 ulp, so a decayed
// score can differ from the CPU's in its last bit (relative 2e-16 per decay). Orders can then
// differ only where two scores are within an ulp of each other on the CPU without being equal;
// exactly equal scores (duplicate proposals) decay identically and tie identically. The linear
// and hard methods are bit-identical.
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/postprocess.h"
#include "cuda/common.cuh"
#include "ops/nms.h"

namespace pstal {
namespace {

using post::kRow;

enum Method { kGaussian = 0, kLinear = 1, kHard = 2 };

constexpr int kThreads = 512, kWarps = kThreads / 32;
constexpr int64_t kNone = INT64_MAX;

// (value, index) of the first maximum over the block; candidates have index != kNone (a thread
// offers one only for a value > -inf, as the CPU's strict test from -inf does). Returns the index
// to every thread, or `fallback` when no thread offered one.
__device__ int64_t block_argmax(double v, int64_t i, int64_t fallback) {
  __shared__ double sv[kWarps];
  __shared__ int64_t si[kWarps];
  __shared__ int64_t result;
  for (int o = 16; o > 0; o >>= 1) {
    double ov = __shfl_xor_sync(0xffffffffu, v, o);
    int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (oi != kNone && (i == kNone || ov > v || (ov == v && oi < i))) {
      v = ov;
      i = oi;
    }
  }
  if ((threadIdx.x & 31) == 0) {
    sv[threadIdx.x >> 5] = v;
    si[threadIdx.x >> 5] = i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double bv = sv[0];
    int64_t bi = si[0];
    for (int w = 1; w < kWarps; w++)
      if (si[w] != kNone && (bi == kNone || sv[w] > bv || (sv[w] == bv && si[w] < bi))) {
        bv = sv[w];
        bi = si[w];
      }
    result = bi == kNone ? fallback : bi;
  }
  __syncthreads();
  return result;
}

__device__ inline void swap_d(double* a, int64_t x, int64_t y) {
  double t = a[x];
  a[x] = a[y];
  a[y] = t;
}

// One block per class group: rows [offsets[g], offsets[g + 1]) of the group-ordered s, e, area,
// sc arrays (modified in place), output rows at the same positions.
__global__ void __launch_bounds__(kThreads) soft_nms_kernel(double* __restrict__ out, double* s, double* e, double* area,
                                                            double* sc, const int64_t* __restrict__ offsets,
                                                            const double* __restrict__ cls, int64_t groups, NmsParams p) {
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t off = offsets[g], n = offsets[g + 1] - off;
    double *gs = s + off, *ge = e + off, *ga = area + off, *gc = sc + off, *go = out + off * kRow;
    const double c = cls[g];
    // m = np.argmax(sc): the first maximum.
    double best = -INFINITY;
    int64_t bi = kNone;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (gc[j] > best) {
        best = gc[j];
        bi = j;
      }
    int64_t m = block_argmax(best, bi, 0);
    for (int64_t q = 0; q < n; q++) {
      if (threadIdx.x == 0) {
        if (m != q) {
          swap_d(gs, q, m);
          swap_d(ge, q, m);
          swap_d(ga, q, m);
          swap_d(gc, q, m);
        }
        double* o = go + q * kRow;
        o[0] = gs[q];
        o[1] = ge[q];
        o[2] = c;
        o[3] = gc[q];
      }
      __syncthreads();
      const double s0 = gs[q], e0 = ge[q], a0 = ga[q];
      best = -INFINITY;
      bi = kNone;
      for (int64_t j = q + 1 + threadIdx.x; j < n; j += blockDim.x) {
        const double ej = ge[j], sj = gs[j];
        const double lo = s0 < sj ? sj : s0;  // std::max(s0, s[j])
        const double hi = ej < e0 ? ej : e0;  // std::min(e0, e[j])
        const double x = __dadd_rn(__dsub_rn(hi, lo), p.plus);
        const double inter = x < 0.0 ? 0.0 : x;  // std::max(x, 0.0)
        double v = gc[j];
        if (inter > 0.0) {
          const double iou = __ddiv_rn(inter, __dsub_rn(__dadd_rn(a0, ga[j]), inter));
          if (p.method == kGaussian) {
            v = __dmul_rn(v, exp(__ddiv_rn(-__dmul_rn(iou, iou), p.sigma)));
            gc[j] = v;
          } else if (iou > p.iou_thr) {
            v = __dmul_rn(v, p.method == kLinear ? __dsub_rn(1.0, iou) : 0.0);
            gc[j] = v;
          }
        }
        if (v > best) {  // strict: a thread's first maximum; the reduction keeps the lowest index
          best = v;
          bi = j;
        }
      }
      m = block_argmax(best, bi, q + 1);
    }
  }
}

}  // namespace

// soft_nms(rows Float64Array [n*4], method 0 gaussian | 1 linear | 2 hard, sigma, iou_thr, plus_one)
//   -> Float64Array [n*4], grouped by class (first appearance), selection order within a class
std::vector<double> soft_nms(const SoftNms& op) {
  const auto& [rows, n, p] = op;
  std::vector<double> out((size_t)(n * kRow));
  if (n == 0) return out;
  auto groups = post::group_by_class(rows, n);
  const int64_t G = (int64_t)groups.size();

  // Group-ordered state [s | e | area | sc], group offsets and classes.
  std::vector<double> state((size_t)(4 * n)), cls((size_t)G);
  std::vector<int64_t> offsets((size_t)G + 1, 0);
  int64_t at = 0;
  for (int64_t g = 0; g < G; g++) {
    cls[(size_t)g] = rows[groups[(size_t)g][0] * kRow + 2];
    for (int64_t r : groups[(size_t)g]) {
      const double* row = rows + r * kRow;
      state[(size_t)at] = row[0];
      state[(size_t)(n + at)] = row[1];
      state[(size_t)(2 * n + at)] = row[1] - row[0] + p.plus;
      state[(size_t)(3 * n + at)] = row[3];
      at++;
    }
    offsets[(size_t)g + 1] = at;
  }
  cuda::DeviceScratch d_state = cuda::upload(state.data(), 4 * n), d_offsets = cuda::upload(offsets.data(), G + 1),
                      d_cls = cuda::upload(cls.data(), G), d_out((size_t)(n * kRow) * sizeof(double));
  double* st = d_state.as<double>();
  unsigned blocks = (unsigned)(G < 65535 * 8 ? G : 65535 * 8);
  soft_nms_kernel<<<blocks, kThreads, 0, cuda::stream()>>>(d_out.as<double>(), st, st + n, st + 2 * n, st + 3 * n,
                                                            d_offsets.as<int64_t>(), d_cls.as<double>(), G, p);
  PSTAL_CUDA_LAUNCH();
  cuda::download(out.data(), d_out.as<double>(), n * kRow);
  return out;
}

}  // namespace pstal
