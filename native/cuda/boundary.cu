// ---------------------------------------------------------------------------------------------
// boundary.cu: the CUDA twin of native/cpu/boundary.cc (the readable reference: the same op,
// host-array arguments, checks and output; the reading of the SPEC is documented there).
// TSPNet's alignment-based boundary adaptation, ABA (SPEC §5).
//
// Per class: visit proposals by descending score (ties: the later row first); an unvisited leader
// gathers every proposal of its class, visited or not, with exact IoU > thr (itself included) and
// moves to their score x IoU / sum IoU weighted mean boundary; the gathered are marked visited.
//
// The visiting order is sequential (visited flags decide later leaders), so a class is one block
// and leaders run in order; the visit order is sorted on the host with the CPU's comparator. For
// each leader the IoUs with all rows of the class are computed in parallel and the gathered rows
// compacted in row order (a ballot scan per tile, cuda/compact.cuh); thread 0 then forms the sums
// sequentially in that order, with explicitly rounded operations, so the adapted boundaries are
// bit-identical to the CPU's (the sums are short: only the proposals that overlap the leader).
// Rows that lead nothing keep their input values; output rows are in input order.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "common/postprocess.h"
#include "cuda/common.cuh"
#include "cuda/compact.cuh"
#include "ops/boundary.h"

namespace pstal {
namespace {

using post::kRow;

constexpr int kThreads = 256;

// Group-contiguous inputs (row j of group g at offsets[g] + j).
struct AbaParams {
  const double* s;      // start of each row
  const double* e;      // end
  const double* score;  // score
  const int64_t* row;   // the row's index in the input (and output)
  const int64_t* order; // visiting order: local indices, descending score
  const int64_t* offsets;
  int64_t groups;
  double thr;
};

__global__ void __launch_bounds__(kThreads) boundary_adaptation_kernel(double* __restrict__ out, uint8_t* visited_all,
                                                                       int64_t* list_all, double* iou_all, AbaParams P) {
  for (int64_t g = blockIdx.x; g < P.groups; g += gridDim.x) {
    const int64_t off = P.offsets[g], n = P.offsets[g + 1] - off;
    const double *s = P.s + off, *e = P.e + off, *score = P.score + off;
    const int64_t *row = P.row + off, *order = P.order + off;
    uint8_t* visited = visited_all + off;
    int64_t* list = list_all + off;  // gathered local indices, in row order
    double* iou = iou_all + off;
    for (int64_t oi = 0; oi < n; oi++) {
      const int64_t leader = order[oi];
      if (visited[leader]) continue;  // uniform: flags were last written before a barrier
      const double s0 = s[leader], e0 = e[leader];
      int64_t count = 0;
      for (int64_t j0 = 0; j0 < n; j0 += blockDim.x) {
        const int64_t j = j0 + threadIdx.x;
        double v = 0.0;
        bool take = false;
        if (j < n) {
          if (j == leader) {
            v = 1.0;
          } else {
            const double lo = s0 < s[j] ? s[j] : s0;  // std::max(s0, r[0])
            const double hi = e[j] < e0 ? e[j] : e0;  // std::min(e0, r[1])
            const double x = __dsub_rn(hi, lo);
            const double inter = x < 0.0 ? 0.0 : x;
            const double uni = __dsub_rn(__dadd_rn(__dsub_rn(e[j], s[j]), __dsub_rn(e0, s0)), inter);
            v = uni > 0.0 ? __ddiv_rn(inter, uni) : 0.0;
          }
          take = v > P.thr;
        }
        const int tile = cuda::compact_tile<kThreads>(take, [&](int rank) {
          const int64_t at = count + rank;
          list[at] = j;
          iou[at] = v;
        });
        count += tile;  // list/iou of the tile complete (compact_tile ends with a barrier)
      }
      if (threadIdx.x == 0) {
        double iou_sum = 0.0;
        for (int64_t k = 0; k < count; k++) iou_sum = __dadd_rn(iou_sum, iou[k]);
        double wsum = 0.0;
        for (int64_t k = 0; k < count; k++) wsum = __dadd_rn(wsum, __dmul_rn(score[list[k]], __ddiv_rn(iou[k], iou_sum)));
        if (wsum != 0.0 && isfinite(wsum)) {
          double ns = 0.0, ne = 0.0;
          for (int64_t k = 0; k < count; k++) {
            const int64_t j = list[k];
            const double w = __ddiv_rn(__dmul_rn(score[j], __ddiv_rn(iou[k], iou_sum)), wsum);
            ns = __dadd_rn(ns, __dmul_rn(s[j], w));
            ne = __dadd_rn(ne, __dmul_rn(e[j], w));
          }
          double* o = out + row[leader] * kRow;
          o[0] = ns;
          o[1] = ne;
        }
      }
      for (int64_t k = threadIdx.x; k < count; k += blockDim.x) visited[list[k]] = 1;
      __syncthreads();  // flags visible to the next leader's test; list/iou free again
    }
  }
}

}  // namespace

// boundary_adaptation(rows Float64Array [n*4], iou_thr) -> Float64Array [n*4], input order
std::vector<double> boundary_adaptation(const BoundaryAdaptation& op) {
  const auto& [rows, n, thr] = op;
  std::vector<double> out((size_t)(n * kRow));
  if (n == 0) return out;
  auto groups = post::group_by_class(rows, n);
  const int64_t G = (int64_t)groups.size();

  // Group-contiguous s, e, score, input row and visiting order (the CPU's sort, per group).
  std::vector<double> s((size_t)n), e((size_t)n), sc((size_t)n);
  std::vector<int64_t> row((size_t)n), order((size_t)n), offsets((size_t)G + 1, 0);
  int64_t at = 0;
  for (int64_t g = 0; g < G; g++) {
    const std::vector<int64_t>& idx = groups[(size_t)g];
    const int64_t m = (int64_t)idx.size(), off = at;
    for (int64_t r : idx) {
      s[(size_t)at] = rows[r * kRow];
      e[(size_t)at] = rows[r * kRow + 1];
      sc[(size_t)at] = rows[r * kRow + 3];
      row[(size_t)at] = r;
      at++;
    }
    int64_t* ord = order.data() + off;
    std::iota(ord, ord + m, (int64_t)0);
    auto score = [&](int64_t i) { return sc[(size_t)(off + i)]; };
    std::sort(ord, ord + m, [&](int64_t a, int64_t b) {
      double sa = score(a), sb = score(b);
      return sa != sb ? sa > sb : a > b;
    });
    offsets[(size_t)g + 1] = at;
  }
  cudaStream_t st = cuda::stream();
  cuda::DeviceScratch d_s = cuda::upload(s.data(), n), d_e = cuda::upload(e.data(), n), d_sc = cuda::upload(sc.data(), n),
                      d_row = cuda::upload(row.data(), n), d_order = cuda::upload(order.data(), n),
                      d_offsets = cuda::upload(offsets.data(), G + 1), d_out = cuda::upload(rows, n * kRow);
  cuda::DeviceScratch d_visited((size_t)n), d_list((size_t)n * sizeof(int64_t)), d_iou((size_t)n * sizeof(double));
  PSTAL_CUDA_CHECK(cudaMemsetAsync(d_visited.p, 0, (size_t)n, st));
  AbaParams P{d_s.as<double>(), d_e.as<double>(), d_sc.as<double>(), d_row.as<int64_t>(), d_order.as<int64_t>(),
              d_offsets.as<int64_t>(), G, thr};
  unsigned blocks = (unsigned)(G < 65535 * 8 ? G : 65535 * 8);
  boundary_adaptation_kernel<<<blocks, kThreads, 0, st>>>(d_out.as<double>(), d_visited.as<uint8_t>(), d_list.as<int64_t>(),
                                                          d_iou.as<double>(), P);
  PSTAL_CUDA_LAUNCH();
  cuda::download(out.data(), d_out.as<double>(), n * kRow);
  return out;
}

}  // namespace pstal
