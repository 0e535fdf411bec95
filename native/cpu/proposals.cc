// ---------------------------------------------------------------------------------------------
// proposals.cc: HR-Pro stage-1 candidate proposals (SPEC §2, "Stage-1 inference").
//
// upsample_linear: x [T, C] float32 -> [L, C] float64 by linear interpolation at the positions
//   i / scale, i = 0 .. L-1, L = ceil(T / (1 / scale)) (numpy's arange length; T * scale for
//   integer scales), extrapolating past T-1 with the last segment's slope. The arithmetic follows
//   scipy's interp1d(kind='linear', fill_value='extrapolate') on a float32 array bit for bit:
//   the segment is [k-1, k] with k = the first sample >= x clipped to [1, T-1]; the difference
//   y[k] - y[k-1] is taken in float32 (numpy subtracts the float32 samples in float32), then
//   value = diff * (x - (k-1)) + y[k-1] in float64. scipy refuses T = 1; we return the single
//   sample at every position (a constant signal).
//
// oic_proposals: every candidate of one video in one call. For each cas threshold, each
//   predicted class, each run of upsampled steps, then the same for each agnostic threshold
//   (this is the order the reference appends them, so per-class lists and ties match it):
//   - cas threshold t: the class score with values < t set to 0 (the reference's thresholded
//     copy); a step is in a run when that copy is > 0 (so: value >= t and value > 0). Inner and
//     outer means are taken on the thresholded copy.
//   - agnostic threshold t: runs where the agnostic score, with values < t set to 0, is > 0;
//     means on the full class score.
//   - run [a, b], n = b - a + 1: inner = mean(seq[a..b]); outer band [os, a) + (b, oe] with
//     os = max(0, trunc(a - lambda n)), oe = min(L - 1, trunc(b + lambda n)); outer = its mean
//     or 0 if empty. score = (inner - outer) + gamma * vid_score[class];
//     start = a * step_seconds, end = (b + 1) * step_seconds.
//   Means are numpy's (pairwise sum / n) so scores are bit-identical to the reference's.
//   Option any_quirk: the reference tests `indices.any()`, which is false when the only step
//   above the threshold is step 0, and then emits nothing for that class at that threshold;
//   off by default (SPEC: intended behaviour by default, bug-compatible as an option).
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/postprocess.h"
#include "ops/proposals.h"

// The formulas above are exact float64 operations; a fused multiply-add would change the last bit.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace pstal {
namespace {

using post::kRow;

// Column `col` of x [T, C] upsampled into out[0..L) (see the file comment).
void upsample_column(const float* x, int64_t T, int64_t C, int64_t col, double scale, int64_t L, double* out) {
  if (T == 1) {
    std::fill(out, out + L, (double)x[col]);
    return;
  }
  const double step = 1.0 / scale;
  for (int64_t i = 0; i < L; i++) {
    double pos = (double)i * step;  // numpy arange: start + i * delta with start 0
    int64_t k = (int64_t)std::ceil(pos);
    k = std::min<int64_t>(std::max<int64_t>(k, 1), T - 1);
    int64_t lo = k - 1;
    float ylo = x[lo * C + col];
    float diff = x[k * C + col] - ylo;  // float32, as numpy does
    double slope = (double)diff / 1.0;  // x_hi - x_lo = 1
    out[i] = slope * (pos - (double)lo) + (double)ylo;
  }
}


// Emits one row per run of `member` (mask over L steps) with scores measured on `seq`.
void emit_runs(const uint8_t* member, const double* seq, int64_t L, double cls, double vid_score, const OicParams& p,
               std::vector<double>& band, std::vector<double>& rows) {
  if (p.any_quirk) {
    // indices.any() is false only when the index list is exactly [0] (or empty).
    bool only_zero = L > 0 && member[0];
    for (int64_t i = 1; i < L && only_zero; i++)
      if (member[i]) only_zero = false;
    if (only_zero) return;
  }
  int64_t i = 0;
  while (i < L) {
    if (!member[i]) {
      i++;
      continue;
    }
    int64_t a = i;
    while (i < L && member[i]) i++;
    int64_t b = i - 1, n = b - a + 1;
    double inner = post::pairwise_sum(seq + a, n) / (double)n;
    int64_t os = std::max<int64_t>(0, (int64_t)((double)a - p.lambda * (double)n));
    int64_t oe = std::min<int64_t>(L - 1, (int64_t)((double)b + p.lambda * (double)n));
    int64_t m = 0;
    for (int64_t j = os; j < a; j++) band[m++] = seq[j];
    for (int64_t j = b + 1; j <= oe; j++) band[m++] = seq[j];
    double outer = m == 0 ? 0.0 : post::pairwise_sum(band.data(), m) / (double)m;
    double score = (inner - outer) + p.gamma * vid_score;
    rows.push_back((double)a * p.step_seconds);
    rows.push_back((double)(b + 1) * p.step_seconds);
    rows.push_back(cls);
    rows.push_back(score);
  }
}

}  // namespace

// upsample_linear(x Float32Array [T*C], T, C, scale) -> Float64Array [L*C], L = T*scale
std::vector<double> upsample_linear(const UpsampleLinear& op) {
  const auto& [x, T, C, scale, L] = op;
  std::vector<double> col(L), out(L * C);
  for (int64_t c = 0; c < C; c++) {
    upsample_column(x, T, C, c, scale, L, col.data());
    for (int64_t i = 0; i < L; i++) out[i * C + c] = col[i];
  }
  return out;
}

// oic_proposals(cas Float32Array [T*C], agnostic Float32Array [T], T, C, classes Int32Array [K],
//               vid_score Float32Array [C], cas_thresholds Float64Array, agnostic_thresholds
//               Float64Array, lambda, gamma, scale, step_seconds, any_quirk)
//   -> Float64Array of [start, end, class, score] rows (order: see the file comment)
std::vector<double> oic_proposals(const OicProposals& op) {
  const auto& [cas, agnostic, T, C, classes, K, vid, cth, ncth, ath, nath, p, scale, L] = op;

  // Upsampled class scores of the predicted classes [K, L] and the agnostic score [L].
  std::vector<double> up(K * L), agn(L), seq(L), band(L);
  std::vector<uint8_t> member(L);
  for (int64_t k = 0; k < K; k++) upsample_column(cas, T, C, classes[k], scale, L, up.data() + k * L);
  upsample_column(agnostic, T, 1, 0, scale, L, agn.data());

  std::vector<double> rows;
  rows.reserve(256 * kRow);
  for (int64_t t = 0; t < ncth; t++) {
    const double thr = cth[t];
    for (int64_t k = 0; k < K; k++) {
      const double* u = up.data() + k * L;
      for (int64_t i = 0; i < L; i++) {
        seq[i] = u[i] < thr ? 0.0 : u[i];
        member[i] = seq[i] > 0.0;
      }
      emit_runs(member.data(), seq.data(), L, (double)classes[k], (double)vid[classes[k]], p, band, rows);
    }
  }
  for (int64_t t = 0; t < nath; t++) {
    const double thr = ath[t];
    for (int64_t i = 0; i < L; i++) {
      double v = agn[i] < thr ? 0.0 : agn[i];
      member[i] = v > 0.0;
    }
    for (int64_t k = 0; k < K; k++)
      emit_runs(member.data(), up.data() + k * L, L, (double)classes[k], (double)vid[classes[k]], p, band, rows);
  }
  return rows;
}

}  // namespace pstal
