// ---------------------------------------------------------------------------------------------
// postprocess_args.h: reading the post-processing ops' arguments (ops/proposals.cc, nms.cc,
// boundary.cc): Float64Array arguments and results, and the checks on proposal rows.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/op.h"
#include "common/postprocess.h"

namespace pstal {
namespace post {

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

}  // namespace post
}  // namespace pstal
