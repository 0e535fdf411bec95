// proposals.cc: the arguments of the ops of ops/proposals.h, read and checked once for both addons.
#include "ops/proposals.h"

#include "ops/postprocess_args.h"

namespace pstal {

// upsample_linear(x Float32Array [T*C], T, C, scale) -> Float64Array [L*C], L = T*scale
PSTAL_OP(upsample_linear) {
  int64_t n, T = args.i64(1, "T"), C = args.i64(2, "C");
  double scale = args.f64(3, "scale");
  const float* x = args.f32(0, "x", &n);
  PSTAL_CHECK(args, T >= 1 && C >= 1, "need T >= 1 and C >= 1");
  PSTAL_CHECK(args, n == T * C, "x holds " + std::to_string(n) + " values, expected T*C = " + std::to_string(T * C));
  PSTAL_CHECK(args, std::isfinite(scale) && scale > 0, "scale must be positive");
  int64_t L = upsampled_length(T, scale);
  PSTAL_CHECK(args, L >= 1 && L <= (int64_t)1 << 31, "upsampled length out of range");
  return post::to_js(args.env(), upsample_linear(UpsampleLinear{x, T, C, scale, L}));
}

// oic_proposals(cas Float32Array [T*C], agnostic Float32Array [T], T, C, classes Int32Array [K],
//               vid_score Float32Array [C], cas_thresholds Float64Array, agnostic_thresholds
//               Float64Array, lambda, gamma, scale, step_seconds, any_quirk)
//   -> Float64Array of [start, end, class, score] rows (order: see the file comment)
PSTAL_OP(oic_proposals) {
  int64_t ncas, nagn, K, nvid, ncth, nath;
  const float* cas = args.f32(0, "cas", &ncas);
  const float* agnostic = args.f32(1, "agnostic", &nagn);
  int64_t T = args.i64(2, "T"), C = args.i64(3, "C");
  const int32_t* classes = args.i32(4, "classes", &K);
  const float* vid = args.f32(5, "vid_score", &nvid);
  const double* cth = post::f64_array(args, 6, "cas_thresholds", &ncth);
  const double* ath = post::f64_array(args, 7, "agnostic_thresholds", &nath);
  OicParams p{args.f64(8, "lambda"), args.f64(9, "gamma"), args.f64(11, "step_seconds"), args.flag(12, "any_quirk")};
  double scale = args.f64(10, "scale");
  PSTAL_CHECK(args, T >= 1 && C >= 1, "need T >= 1 and C >= 1");
  PSTAL_CHECK(args, ncas == T * C, "cas holds " + std::to_string(ncas) + " values, expected T*C = " + std::to_string(T * C));
  PSTAL_CHECK(args, nagn == T, "agnostic holds " + std::to_string(nagn) + " values, expected T = " + std::to_string(T));
  PSTAL_CHECK(args, nvid == C, "vid_score holds " + std::to_string(nvid) + " values, expected C = " + std::to_string(C));
  for (int64_t k = 0; k < K; k++)
    PSTAL_CHECK(args, classes[k] >= 0 && classes[k] < C, "classes[" + std::to_string(k) + "] = " + std::to_string(classes[k]) + " is outside [0, C)");
  for (int64_t i = 0; i < ncth; i++) PSTAL_CHECK(args, !std::isnan(cth[i]), "cas_thresholds has NaN");
  for (int64_t i = 0; i < nath; i++) PSTAL_CHECK(args, !std::isnan(ath[i]), "agnostic_thresholds has NaN");
  PSTAL_CHECK(args, std::isfinite(scale) && scale > 0, "scale must be positive");
  PSTAL_CHECK(args, std::isfinite(p.lambda) && p.lambda >= 0, "lambda must be a non-negative number");
  PSTAL_CHECK(args, std::isfinite(p.gamma), "gamma must be finite");
  PSTAL_CHECK(args, std::isfinite(p.step_seconds) && p.step_seconds > 0, "step_seconds must be positive");
  int64_t L = upsampled_length(T, scale);
  PSTAL_CHECK(args, L >= 1 && L <= (int64_t)1 << 31, "upsampled length out of range");
  OicProposals a{cas, agnostic, T, C, classes, K, vid, cth, ncth, ath, nath, p, scale, L};
  return post::to_js(args.env(), oic_proposals(a));
}

}  // namespace pstal
