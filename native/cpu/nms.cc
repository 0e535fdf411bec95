// ---------------------------------------------------------------------------------------------
// nms.cc: class-wise soft-NMS (SPEC §2 "final stage-1 detections", §4 inference, §5).
//
// Per class, the reference's loop, reproduced step by step:
//   repeat until no row is left: m = the first row with the highest score (np.argmax);
//   swap rows 0 and m (so the old first row moves to m's place: this reorders the rest and
//   decides later ties); keep row 0 with its current score; decay every other row by
//   w(IoU with row 0); drop row 0.
// Every row is kept (gaussian / linear), with its decayed score, in selection order.
//   gaussian: w = exp(-(iou * iou) / sigma); linear: w = 1 - iou if iou > thr; hard: 0 if iou > thr.
//   IoU: by default the reference's "+1" convention (length = end - start + 1, intersection =
//   max(min end - max start + 1, 0), a pixel-box habit applied to seconds); exact IoU (no +1)
//   as an option. A pair that does not intersect has weight exactly 1, so it is skipped.
// Groups: classes in order of first appearance in the input (the reference's proposal_dict
// insertion order when rows come as they were generated); each group's rows are written
// contiguously. The argmax of the next step is found in the same pass as the decay.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "common/parallel.h"
#include "common/postprocess.h"
#include "ops/nms.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace pstal {
namespace {

using post::kRow;

enum Method { kGaussian = 0, kLinear = 1, kHard = 2 };

// Soft-NMS of one class's rows (indices into `rows`), written to out[0 .. n*4).
void soft_nms_group(const double* rows, const std::vector<int64_t>& idx, const NmsParams& p, double* out) {
  const int64_t n = (int64_t)idx.size();
  std::vector<double> s(n), e(n), area(n), sc(n);
  for (int64_t i = 0; i < n; i++) {
    const double* r = rows + idx[i] * kRow;
    s[i] = r[0];
    e[i] = r[1];
    sc[i] = r[3];
    area[i] = e[i] - s[i] + p.plus;
  }
  const double cls = rows[idx[0] * kRow + 2];
  int64_t m = 0;
  for (int64_t i = 1; i < n; i++)
    if (sc[i] > sc[m]) m = i;
  for (int64_t q = 0; q < n; q++) {
    if (m != q) {
      std::swap(s[q], s[m]);
      std::swap(e[q], e[m]);
      std::swap(area[q], area[m]);
      std::swap(sc[q], sc[m]);
    }
    double* o = out + q * kRow;
    o[0] = s[q];
    o[1] = e[q];
    o[2] = cls;
    o[3] = sc[q];
    const double s0 = s[q], e0 = e[q], a0 = area[q];
    double best = -std::numeric_limits<double>::infinity();
    int64_t next = q + 1;
    for (int64_t j = q + 1; j < n; j++) {
      double inter = std::max(std::min(e0, e[j]) - std::max(s0, s[j]) + p.plus, 0.0);
      if (inter > 0.0) {
        double iou = inter / (a0 + area[j] - inter);
        if (p.method == kGaussian) {
          sc[j] *= std::exp(-(iou * iou) / p.sigma);
        } else if (iou > p.iou_thr) {
          sc[j] *= p.method == kLinear ? 1.0 - iou : 0.0;
        }
      }
      if (sc[j] > best) {  // strict: the first maximum wins, as np.argmax
        best = sc[j];
        next = j;
      }
    }
    m = next;
  }
}

}  // namespace

// soft_nms(rows Float64Array [n*4], method 0 gaussian | 1 linear | 2 hard, sigma, iou_thr, plus_one)
//   -> Float64Array [n*4], grouped by class (first appearance), selection order within a class
std::vector<double> soft_nms(const SoftNms& op) {
  const auto& [rows, n, p] = op;
  auto groups = post::group_by_class(rows, n);
  std::vector<int64_t> offset(groups.size() + 1, 0);
  int64_t work = 0;
  for (size_t g = 0; g < groups.size(); g++) {
    offset[g + 1] = offset[g] + (int64_t)groups[g].size();
    work += (int64_t)groups[g].size() * (int64_t)groups[g].size();
  }
  std::vector<double> out(n * kRow);
  auto run = [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; g++) soft_nms_group(rows, groups[g], p, out.data() + offset[g] * kRow);
  };
  // Classes are independent; threads pay off only once the quadratic work is large.
  if (groups.size() > 1 && work > 4000000)
    parallel_for((int64_t)groups.size(), 1, run);
  else
    run(0, (int64_t)groups.size());
  return out;
}

}  // namespace pstal
