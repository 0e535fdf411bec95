// ---------------------------------------------------------------------------------------------
// boundary.cc: TSPNet's alignment-based boundary adaptation, ABA (SPEC §5).
//
// Within each class (the reference runs it once per predicted class, over the shared proposal
// set scored for that class): visit proposals by descending score; an unvisited one (the
// leader) gathers every proposal, visited or not, whose exact IoU (no +1) with it is > thr,
// itself included; its new boundary is sum_j w_j [s_j, e_j] with w_j = score_j * iou_j / sum iou,
// normalised to sum 1; all gathered proposals are marked visited.
// Reading of the SPEC / reference (zyxia1009/CVPR2024-TSPNet, boundary_adaption):
//   - the output has one row per input row, in the input order: leaders get the adapted
//     boundary, the others keep theirs, and every row keeps its own score (the reference then
//     soft-NMSes all of them). IoUs are always measured on the original boundaries.
//   - ties in score: the reference visits np.argsort(score)[::-1], which for equal scores
//     (stable sort, reversed) puts the later row first; we do that deterministically.
//   - a zero-length leader (0/0 IoU, NaN in the reference) gathers only itself; if the weights
//     sum to 0 (all gathered scores 0) the leader keeps its boundary (the reference gives NaN).
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/postprocess.h"
#include "ops/boundary.h"

namespace pstal {
namespace {

using post::kRow;

void adapt_group(const double* rows, const std::vector<int64_t>& idx, double thr, double* out) {
  const int64_t n = (int64_t)idx.size();
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto score = [&](int64_t i) { return rows[idx[i] * kRow + 3]; };
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    double sa = score(a), sb = score(b);
    return sa != sb ? sa > sb : a > b;
  });
  std::vector<uint8_t> visited(n, 0);
  std::vector<int64_t> gathered;
  std::vector<double> iou;
  for (int64_t leader : order) {
    if (visited[leader]) continue;
    const double* L = rows + idx[leader] * kRow;
    const double s0 = L[0], e0 = L[1];
    gathered.clear();
    iou.clear();
    double iou_sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
      const double* r = rows + idx[j] * kRow;
      double v;
      if (j == leader) {
        v = 1.0;
      } else {
        double inter = std::max(std::min(e0, r[1]) - std::max(s0, r[0]), 0.0);
        double uni = (r[1] - r[0]) + (e0 - s0) - inter;
        v = uni > 0.0 ? inter / uni : 0.0;
      }
      if (v > thr) {
        gathered.push_back(j);
        iou.push_back(v);
        iou_sum += v;
      }
    }
    double wsum = 0.0;
    for (size_t g = 0; g < gathered.size(); g++) wsum += score(gathered[g]) * (iou[g] / iou_sum);
    double* o = out + idx[leader] * kRow;
    if (wsum != 0.0 && std::isfinite(wsum)) {
      double ns = 0.0, ne = 0.0;
      for (size_t g = 0; g < gathered.size(); g++) {
        double w = score(gathered[g]) * (iou[g] / iou_sum) / wsum;
        const double* r = rows + idx[gathered[g]] * kRow;
        ns += r[0] * w;
        ne += r[1] * w;
      }
      o[0] = ns;
      o[1] = ne;
    }
    for (int64_t j : gathered) visited[j] = 1;
  }
}

}  // namespace

// boundary_adaptation(rows Float64Array [n*4], iou_thr) -> Float64Array [n*4], input order
std::vector<double> boundary_adaptation(const BoundaryAdaptation& op) {
  const auto& [rows, n, thr] = op;
  std::vector<double> out(rows, rows + n * kRow);
  for (const auto& g : post::group_by_class(rows, n)) adapt_group(rows, g, thr, out.data());
  return out;
}

}  // namespace pstal
