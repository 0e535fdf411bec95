// ---------------------------------------------------------------------------------------------
// postprocess.h: what the post-processing kernels of both backends share (native/{cpu,cuda}/
// proposals, nms, boundary): the proposal row layout, grouping by class, numpy's pairwise
// summation. Napi-free; their Float64Array arguments are read in native/ops/postprocess_args.h.
//
// Post-processing runs in double precision throughout: the reference's upsampled scores,
// thresholds, OIC scores and soft-NMS all live in float64 numpy arrays (SPEC §2), and the
// threshold tests (value < 0.07500000000000001, ...) are decided in that precision.
// A proposal row is 4 doubles: [start, end, class, score] (the reference's list layout).
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {
namespace post {

constexpr int64_t kRow = 4;  // [start, end, class, score]

// Row indices grouped by class, groups in order of each class's first appearance (the insertion
// order of the reference's proposal_dict when rows come in the order they were generated).
inline std::vector<std::vector<int64_t>> group_by_class(const double* rows, int64_t n) {
  std::vector<std::vector<int64_t>> groups;
  std::vector<double> keys;  // few classes a video: a linear scan beats hashing
  for (int64_t r = 0; r < n; r++) {
    double c = rows[r * kRow + 2];
    size_t g = 0;
    while (g < keys.size() && keys[g] != c) g++;
    if (g == keys.size()) {
      keys.push_back(c);
      groups.emplace_back();
    }
    groups[g].push_back(r);
  }
  return groups;
}

// Sum of a[0..n) in numpy's order (pairwise_sum for float64, the summation np.mean uses on a
// contiguous array): under 8 values a plain loop from 0; up to 128 eight interleaved partial sums
// combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) plus the tail; above that, split at a
// multiple of 8 near the middle and recurse. Bit-identical means make OIC scores and soft-NMS
// ties come out as in the reference.
inline double pairwise_sum(const double* a, int64_t n) {
  if (n < 8) {
    double res = 0.;
    for (int64_t i = 0; i < n; i++) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; j++) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

}  // namespace post
}  // namespace pstal
