// ---------------------------------------------------------------------------------------------
// addon.cc: the CPU addon's entry point. Exports NativeBuffer, every registered op (PSTAL_OP in
// native/cpu/*.cc and native/common/*.cc) and memory statistics.
// ---------------------------------------------------------------------------------------------
#include <cmath>

#include "common/op.h"

namespace pstal {

PSTAL_OP(memory_stats) {
  Napi::Object o = Napi::Object::New(args.env());
  o.Set("liveBytes", Napi::Number::New(args.env(), (double)NativeBuffer::live_bytes));
  o.Set("liveBuffers", Napi::Number::New(args.env(), (double)NativeBuffer::live_count));
  o.Set("cachedBytes", Napi::Number::New(args.env(), (double)cached_bytes()));
  return o;
}

// Returns every cached free block to the system.
PSTAL_OP(release_cached_buffers) {
  release_cached();
  return args.env().Undefined();
}

// Index of the first NaN or Inf in a buffer, or -1: the autograd layer's anomaly check.
PSTAL_OP(first_nonfinite) {
  int64_t n = args.buf_size(0, "x");
  const float* x = args.buf(0, n, "x");
  for (int64_t i = 0; i < n; i++)
    if (!std::isfinite(x[i])) return Napi::Number::New(args.env(), (double)i);
  return Napi::Number::New(args.env(), -1);
}

// Copies n floats from src[src_off..] to dst[dst_off..] (both native buffers).
PSTAL_OP(copy) {
  int64_t n = args.i64(4, "n"), so = args.i64(1, "src_offset"), doff = args.i64(3, "dst_offset");
  PSTAL_CHECK(args, n >= 0 && so >= 0 && doff >= 0, "offsets and count must be non-negative");
  const float* s = args.buf(0, so + n, "src");
  float* d = args.buf(2, doff + n, "dst");
  for (int64_t i = 0; i < n; i++) d[doff + i] = s[so + i];
  return args.env().Undefined();
}

}  // namespace pstal

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeBuffer", pstal::NativeBuffer::Define(env));
  pstal::install_ops(env, exports);
  exports.Set("backend", Napi::String::New(env, "cpu"));
  return exports;
}

NODE_API_MODULE(pstal, Init)
