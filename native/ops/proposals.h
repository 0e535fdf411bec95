// ---------------------------------------------------------------------------------------------
// proposals.h: HR-Pro's proposal generation (lib/postprocess/proposals.ts): linear upsampling of
// scores and the multi-threshold OIC proposals, in double precision. Arguments read once by
// ops/proposals.cc; kernels native/cpu/proposals.cc (the reference) and native/cuda/proposals.cu.
// Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace pstal {

// numpy's arange(0, T, 1/scale) length.
inline int64_t upsampled_length(int64_t T, double scale) { return (int64_t)std::ceil((double)T / (1.0 / scale)); }

// x [T, C] upsampled to [L, C], L = upsampled_length(T, scale).
struct UpsampleLinear {
  const float* x;
  int64_t T, C;
  double scale;
  int64_t L;
};
std::vector<double> upsample_linear(const UpsampleLinear& a);

struct OicParams {
  double lambda, gamma, step_seconds;
  bool any_quirk;
};

// [start, end, class, score] rows of every threshold and predicted class (order: see
// native/cpu/proposals.cc).
struct OicProposals {
  const float* cas;       // [T, C]
  const float* agnostic;  // [T]
  int64_t T, C;
  const int32_t* classes;  // [K], each in [0, C)
  int64_t K;
  const float* vid;  // [C]
  const double* cth;  // cas thresholds [ncth]
  int64_t ncth;
  const double* ath;  // agnostic thresholds [nath]
  int64_t nath;
  OicParams p;
  double scale;
  int64_t L;
};
std::vector<double> oic_proposals(const OicProposals& a);

}  // namespace pstal
