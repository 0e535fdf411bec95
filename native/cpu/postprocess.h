// ---------------------------------------------------------------------------------------------
// postprocess.h: helpers shared by the post-processing ops (proposals.cc, nms.cc, boundary.cc):
// Float64Array arguments and results, proposal rows, and numpy's pairwise summation.
//
// Post-processing runs in double precision throughout: the reference's upsampled scores,
// thresholds, OIC scores and soft-NMS all live in float64 numpy arrays (SPEC §2), and the
// threshold tests (value < 0.07500000000000001, ...) are decided in that precision.
// A proposal row is 4 doubles: [start, end, class, score] (the reference's list layout).
// ---------------------------------------------------------------------------------------------
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/op.h"

namespace pstal {
namespace post {

constexpr int64_t kRow = 4;  // [start, end, class, score]

// A Float64Array argument (valid for the duration of the call).
inline const double* f64_array(const Args& args, size_t i, const char* name, int64_t* len) {
  const Napi::CallbackInfo& info = args.info;
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    args.fail(std::string("argument ") + std::to_string(i) + " (" + name + ") must be a Float64Array");
  auto a = info[i].As<Napi::Float64Array>();
  *len = (int64_t)a.ElementLength();
  return a.Data();
}

inline Napi::Float64Array to_js(Napi::Env env, const std::vector<double>& v) {
  auto out = Napi::Float64Array::New(env, v.size());
  if (!v.empty()) std::memcpy(out.Data(), v.data(), v.size() * sizeof(double));
  return out;
}

// Checks proposal rows: a whole number of rows, finite values, end >= start, integer class.
inline int64_t check_rows(const Args& args, const double* rows, int64_t len, const char* name) {
  if (len % kRow != 0)
    args.fail(std::string(name) + " must hold [start, end, class, score] rows, received " + std::to_string(len) + " values");
  int64_t n = len / kRow;
  for (int64_t r = 0; r < n; r++) {
    const double* p = rows + r * kRow;
    if (!std::isfinite(p[0]) || !std::isfinite(p[1]) || !std::isfinite(p[2]) || !std::isfinite(p[3]))
      args.fail(std::string(name) + " row " + std::to_string(r) + " is not finite");
    if (p[1] < p[0]) args.fail(std::string(name) + " row " + std::to_string(r) + " ends before it starts");
    if (p[2] != std::floor(p[2]) || std::fabs(p[2]) > 9007199254740992.0)
      args.fail(std::string(name) + " row " + std::to_string(r) + " has a non-integer class");
  }
  return n;
}

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
