// ---------------------------------------------------------------------------------------------
// proposals.cu: the CUDA twin of native/cpu/proposals.cc (the readable reference: the same ops,
// host-array arguments, checks, results and row order; the semantics are documented there).
// HR-Pro stage-1 candidate proposals (SPEC §2, "Stage-1 inference").
//
// upsample_linear: one thread per output value.
// oic_proposals: the upsampled class scores [K, L] and agnostic score [L] are made on the device
//   (one thread per value), then every (threshold, class) pair is one block, in the CPU's output
//   order p = t * K + k over the cas thresholds, then ncth * K + t * K + k over the agnostic ones:
//   1. count_runs: the block counts the run starts of its pair (a step in the run whose previous
//      step is not); with any_quirk, a pair whose only member step is step 0 counts 0.
//   2. the host scans the counts into row offsets (the output is exactly sized).
//   3. emit_runs: the block walks L in tiles; run starts are ranked with a ballot scan
//      (cuda/compact.cuh), so run r of pair p lands at row offsets[p] + r: the CPU's order, with no
//      sort and no atomics. The thread that owns a start walks to the run's end and computes its
//      OIC score alone.
//   Means use the CPU's pairwise summation (numpy's order), evaluated without recursion.
//
// Every float64 formula uses explicitly rounded operations (__dmul_rn, __dadd_rn, ...), so no
// multiply-add is fused and the results are bit-identical to the CPU's (which turns contraction
// off in proposals.cc): same rows, same order, same bits.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/postprocess.h"
#include "cuda/common.cuh"
#include "cuda/compact.cuh"
#include "ops/proposals.h"

namespace pstal {
namespace {

using post::kRow;

constexpr int kThreads = 256, kWarps = kThreads / 32;

unsigned capped_blocks(int64_t n) {
  if (n < 1) n = 1;
  if (n > 65535 * 8) n = 65535 * 8;
  return (unsigned)n;
}

// ---- upsampling ------------------------------------------------------------------------------

// Column `col` of x (row stride `stride`, T rows) at step i of the upsampled axis (see the CPU's
// upsample_column: segment [k-1, k], float32 difference, float64 interpolation).
__device__ inline double upsample_at(const float* x, int64_t T, int64_t stride, int64_t col, double step, int64_t i) {
  if (T == 1) return (double)x[col];
  double pos = __dmul_rn((double)i, step);
  int64_t k = (int64_t)ceil(pos);
  k = k < 1 ? 1 : (k > T - 1 ? T - 1 : k);
  int64_t lo = k - 1;
  float ylo = x[lo * stride + col];
  float diff = __fsub_rn(x[k * stride + col], ylo);
  double slope = (double)diff;  // diff / (x_hi - x_lo), x_hi - x_lo = 1
  return __dadd_rn(__dmul_rn(slope, __dsub_rn(pos, (double)lo)), (double)ylo);
}

// out [L, C] (upsample_linear's layout).
__global__ void upsample_interleaved_kernel(double* __restrict__ out, const float* __restrict__ x, int64_t T, int64_t C,
                                            double step, int64_t L) {
  const int64_t n = L * C;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = idx / C, c = idx - i * C;
    out[idx] = upsample_at(x, T, C, c, step, i);
  }
}

// out [rows, L]: row r is column cols[r] of x (column 0 when cols is null).
__global__ void upsample_rows_kernel(double* __restrict__ out, const float* __restrict__ x, int64_t T, int64_t stride,
                                     const int32_t* __restrict__ cols, int64_t rows, double step, int64_t L) {
  const int64_t n = rows * L;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = idx / L, i = idx - r * L;
    out[idx] = upsample_at(x, T, stride, cols ? (int64_t)cols[r] : 0, step, i);
  }
}

// ---- OIC proposals ---------------------------------------------------------------------------

struct OicDevParams {
  const double* up;        // [K, L] upsampled class scores of the predicted classes
  const double* agn;       // [L] upsampled agnostic score
  const double* thr;       // [ncth + nath]: cas thresholds, then agnostic thresholds
  const double* cls;       // [K] class index as double
  const double* vid;       // [K] video score of the class, as double
  int64_t K, L, ncth, pairs;
  double lambda, gamma, step_seconds;
  bool any_quirk;
};

// One (threshold, class) pair: the sequence the means are taken on and the run membership.
struct PairView {
  const double* u;  // class score
  const double* m;  // membership source (u for cas thresholds, the agnostic score otherwise)
  double thr;
  bool zeroed;      // cas thresholds: means on the thresholded copy
  int64_t k;

  __device__ double seq(int64_t i) const {
    double v = u[i];
    return zeroed ? (v < thr ? 0.0 : v) : v;
  }
  __device__ bool member(int64_t i) const {
    double v = m[i] < thr ? 0.0 : m[i];
    return v > 0.0;
  }
  __device__ bool starts_run(int64_t i) const { return member(i) && (i == 0 || !member(i - 1)); }
};

__device__ inline PairView pair_view(const OicDevParams& P, int64_t p) {
  const int64_t ncas = P.ncth * P.K;
  PairView v;
  if (p < ncas) {
    int64_t t = p / P.K;
    v.k = p - t * P.K;
    v.u = P.up + v.k * P.L;
    v.m = v.u;
    v.thr = P.thr[t];
    v.zeroed = true;
  } else {
    int64_t q = p - ncas, t = q / P.K;
    v.k = q - t * P.K;
    v.u = P.up + v.k * P.L;
    v.m = P.agn;
    v.thr = P.thr[P.ncth + t];
    v.zeroed = false;
  }
  return v;
}

// A double -> int64 conversion as the CPU's compiled `(int64_t)v` behaves on x86-64: truncation,
// and INT64_MIN for values out of range (the device would saturate instead).
__device__ inline int64_t trunc_i64(double v) {
  return (v >= -9223372036854775808.0 && v < 9223372036854775808.0) ? (int64_t)v : INT64_MIN;
}

// post::pairwise_sum over get(0 .. n), without recursion: the same split points, leaves and
// combination order (left + right), driven by an explicit stack (depth <= 25 for n <= 2^31).
template <typename Get>
__device__ double leaf_sum(const Get& get, int64_t off, int64_t n) {
  if (n < 8) {
    double res = 0.;
    for (int64_t i = 0; i < n; i++) res = __dadd_rn(res, get(off + i));
    return res;
  }
  double r[8];
  for (int j = 0; j < 8; j++) r[j] = get(off + j);
  int64_t i = 8;
  for (; i < n - (n % 8); i += 8)
    for (int j = 0; j < 8; j++) r[j] = __dadd_rn(r[j], get(off + i + j));
  double res = __dadd_rn(__dadd_rn(__dadd_rn(r[0], r[1]), __dadd_rn(r[2], r[3])), __dadd_rn(__dadd_rn(r[4], r[5]), __dadd_rn(r[6], r[7])));
  for (; i < n; i++) res = __dadd_rn(res, get(off + i));
  return res;
}

template <typename Get>
__device__ double pairwise_sum_dev(const Get& get, int64_t n) {
  // Frame d: the span [off, off + len); stage 0: left half next, 1: right half next (its left
  // half's sum in left[d]), 2: combine. Spans fit 32 bits (n <= L <= 2^31); 544 bytes a thread.
  uint32_t off[32], len[32];
  double left[32];
  uint8_t stage[32];
  int sp = 0;
  off[0] = 0;
  len[0] = (uint32_t)n;
  stage[0] = 0;
  double ret = 0.0;
  while (sp >= 0) {
    const int64_t fn = len[sp];
    if (fn <= 128) {
      ret = leaf_sum(get, (int64_t)off[sp], fn);
      sp--;
      continue;
    }
    int64_t n2 = fn / 2;
    n2 -= n2 % 8;
    if (stage[sp] == 0) {
      stage[sp] = 1;
      off[sp + 1] = off[sp];
      len[sp + 1] = (uint32_t)n2;
      stage[sp + 1] = 0;
      sp++;
    } else if (stage[sp] == 1) {
      left[sp] = ret;
      stage[sp] = 2;
      off[sp + 1] = off[sp] + (uint32_t)n2;
      len[sp + 1] = (uint32_t)(fn - n2);
      stage[sp + 1] = 0;
      sp++;
    } else {
      ret = __dadd_rn(left[sp], ret);
      sp--;
    }
  }
  return ret;
}

// The row of the run starting at a (the CPU's emit_runs body).
__device__ void emit_one(const OicDevParams& P, const PairView& v, int64_t a, double* out) {
  const int64_t L = P.L;
  int64_t b = a;
  while (b + 1 < L && v.member(b + 1)) b++;
  const int64_t n = b - a + 1;
  auto inner_get = [&](int64_t j) { return v.seq(a + j); };
  const double inner = __ddiv_rn(pairwise_sum_dev(inner_get, n), (double)n);
  const double ln = __dmul_rn(P.lambda, (double)n);
  int64_t os = trunc_i64(__dsub_rn((double)a, ln));
  os = os > 0 ? os : 0;
  int64_t oe = trunc_i64(__dadd_rn((double)b, ln));
  oe = oe < L - 1 ? oe : L - 1;
  const int64_t nl = a - os, nr = oe > b ? oe - b : 0, m = nl + nr;
  auto band_get = [&](int64_t j) { return j < nl ? v.seq(os + j) : v.seq(b + 1 + (j - nl)); };
  const double outer = m == 0 ? 0.0 : __ddiv_rn(pairwise_sum_dev(band_get, m), (double)m);
  out[0] = __dmul_rn((double)a, P.step_seconds);
  out[1] = __dmul_rn((double)(b + 1), P.step_seconds);
  out[2] = P.cls[v.k];
  out[3] = __dadd_rn(__dsub_rn(inner, outer), __dmul_rn(P.gamma, P.vid[v.k]));
}

__device__ inline int64_t block_sum(int64_t x, int64_t* shared /* [kWarps] */) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = x;
  __syncthreads();
  int64_t total = 0;
  for (int w = 0; w < kWarps; w++) total += shared[w];
  __syncthreads();  // shared may be reused right after
  return total;
}

// counts[p] = number of runs pair p emits.
__global__ void __launch_bounds__(kThreads) count_runs_kernel(int64_t* __restrict__ counts, OicDevParams P) {
  __shared__ int64_t warp_sums[kWarps];
  for (int64_t p = blockIdx.x; p < P.pairs; p += gridDim.x) {
    const PairView v = pair_view(P, p);
    int64_t local = 0;
    int later_member = 0;
    for (int64_t i = threadIdx.x; i < P.L; i += blockDim.x) {
      bool mi = v.member(i);
      if (mi && (i == 0 || !v.member(i - 1))) local++;
      if (mi && i > 0) later_member = 1;
    }
    int64_t total = block_sum(local, warp_sums);
    // indices.any() is false only when the index list is exactly [0].
    int others = __syncthreads_or(later_member);
    if (P.any_quirk && !others && v.member(0)) total = 0;
    if (threadIdx.x == 0) counts[p] = total;
  }
}

// Writes pair p's runs, in time order, to rows [offsets[p], offsets[p + 1]).
__global__ void __launch_bounds__(kThreads) emit_runs_kernel(double* __restrict__ rows, const int64_t* __restrict__ offsets,
                                                             OicDevParams P) {
  for (int64_t p = blockIdx.x; p < P.pairs; p += gridDim.x) {
    const int64_t base = offsets[p];
    if (offsets[p + 1] == base) continue;  // uniform across the block
    const PairView v = pair_view(P, p);
    int64_t running = 0;
    for (int64_t i0 = 0; i0 < P.L; i0 += blockDim.x) {
      const int64_t i = i0 + threadIdx.x;
      const bool start = i < P.L && v.starts_run(i);
      const int tile = cuda::compact_tile<kThreads>(start, [&](int in_tile) {
        const int64_t rank = running + in_tile;
        emit_one(P, v, i, rows + (base + rank) * kRow);
      });
      running += tile;
    }
  }
}

}  // namespace

// upsample_linear(x Float32Array [T*C], T, C, scale) -> Float64Array [L*C], L = T*scale
std::vector<double> upsample_linear(const UpsampleLinear& op) {
  const auto& [x, T, C, scale, L] = op;
  cuda::DeviceScratch dx = cuda::upload(x, T * C);
  cuda::DeviceScratch dout((size_t)(L * C) * sizeof(double));
  upsample_interleaved_kernel<<<cuda::blocks_for(L * C), kThreads, 0, cuda::stream()>>>(dout.as<double>(), dx.as<float>(), T, C,
                                                                                          1.0 / scale, L);
  PSTAL_CUDA_LAUNCH();
  std::vector<double> out((size_t)(L * C));
  cuda::download(out.data(), dout.as<double>(), L * C);
  return out;
}

// oic_proposals(cas Float32Array [T*C], agnostic Float32Array [T], T, C, classes Int32Array [K],
//               vid_score Float32Array [C], cas_thresholds Float64Array, agnostic_thresholds
//               Float64Array, lambda, gamma, scale, step_seconds, any_quirk)
//   -> Float64Array of [start, end, class, score] rows (order: see native/cpu/proposals.cc)
std::vector<double> oic_proposals(const OicProposals& op) {
  const auto& [cas, agnostic, T, C, classes, K, vid, cth, ncth, ath, nath, p, scale, L] = op;
  const double lambda = p.lambda, gamma = p.gamma, step_seconds = p.step_seconds;
  const bool any_quirk = p.any_quirk;

  const int64_t pairs = (ncth + nath) * K;
  if (pairs == 0) return {};
  cudaStream_t st = cuda::stream();

  // Small per-call tables, on the host until uploaded (they outlive the final download).
  std::vector<double> thr(cth, cth + ncth), cls((size_t)K), kvid((size_t)K);
  thr.insert(thr.end(), ath, ath + nath);
  for (int64_t k = 0; k < K; k++) {
    cls[(size_t)k] = (double)classes[k];
    kvid[(size_t)k] = (double)vid[classes[k]];
  }
  cuda::DeviceScratch d_cas = cuda::upload(cas, T * C), d_agn_in = cuda::upload(agnostic, T),
                      d_classes = cuda::upload(classes, K), d_thr = cuda::upload(thr.data(), (int64_t)thr.size()),
                      d_cls = cuda::upload(cls.data(), K), d_vid = cuda::upload(kvid.data(), K);

  // Upsampled class scores of the predicted classes [K, L] and the agnostic score [L].
  cuda::DeviceScratch d_up((size_t)(K * L) * sizeof(double)), d_agn((size_t)L * sizeof(double));
  const double step = 1.0 / scale;
  upsample_rows_kernel<<<cuda::blocks_for(K * L), kThreads, 0, st>>>(d_up.as<double>(), d_cas.as<float>(), T, C,
                                                                     d_classes.as<int32_t>(), K, step, L);
  PSTAL_CUDA_LAUNCH();
  upsample_rows_kernel<<<cuda::blocks_for(L), kThreads, 0, st>>>(d_agn.as<double>(), d_agn_in.as<float>(), T, 1, nullptr, 1,
                                                                 step, L);
  PSTAL_CUDA_LAUNCH();

  OicDevParams P{d_up.as<double>(), d_agn.as<double>(), d_thr.as<double>(), d_cls.as<double>(), d_vid.as<double>(),
                 K, L, ncth, pairs, lambda, gamma, step_seconds, any_quirk};

  // 1-2. Runs per pair, scanned into row offsets on the host.
  cuda::DeviceScratch d_counts((size_t)pairs * sizeof(int64_t));
  count_runs_kernel<<<capped_blocks(pairs), kThreads, 0, st>>>(d_counts.as<int64_t>(), P);
  PSTAL_CUDA_LAUNCH();
  std::vector<int64_t> offsets((size_t)pairs + 1, 0);
  cuda::download(offsets.data() + 1, d_counts.as<int64_t>(), pairs);
  for (int64_t p = 0; p < pairs; p++) offsets[(size_t)p + 1] += offsets[(size_t)p];
  const int64_t total = offsets[(size_t)pairs];
  std::vector<double> out((size_t)(total * kRow));
  if (total == 0) return out;

  // 3. Rows in place.
  cuda::DeviceScratch d_offsets = cuda::upload(offsets.data(), pairs + 1);
  cuda::DeviceScratch d_rows((size_t)(total * kRow) * sizeof(double));
  emit_runs_kernel<<<capped_blocks(pairs), kThreads, 0, st>>>(d_rows.as<double>(), d_offsets.as<int64_t>(), P);
  PSTAL_CUDA_LAUNCH();
  cuda::download(out.data(), d_rows.as<double>(), total * kRow);
  return out;
}

}  // namespace pstal
