// synth.cc: the arguments of the ops of ops/synth.h, read and checked once for both addons.
#include "ops/synth.h"

#include <string>

#include "common/op.h"

namespace pstal {

// synth_features(x Float32Array [T*D] (written), z Float32Array [T*K], b Float32Array [K*D],
//   table Float32Array, off Int32Array [T], scale Float32Array [T], T, D, K, phi, offset, width, out_scale)
PSTAL_OP(synth_features) {
  int64_t nx, nz, nb, ntab, noff, nsc;
  float* x = args.f32(0, "x", &nx);
  const float* z = args.f32(1, "z", &nz);
  const float* b = args.f32(2, "b", &nb);
  const float* table = args.f32(3, "table", &ntab);
  const int32_t* off = args.i32(4, "off", &noff);
  const float* scale = args.f32(5, "scale", &nsc);
  int64_t T = args.i64(6, "T"), D = args.i64(7, "D"), K = args.i64(8, "K");
  float phi = (float)args.f64(9, "phi"), offset = (float)args.f64(10, "offset");
  float w = (float)args.f64(11, "width"), s = (float)args.f64(12, "out_scale");
  PSTAL_CHECK(args, T >= 0 && D >= 1 && K >= 0, "need T >= 0, D >= 1, K >= 0");
  PSTAL_CHECK(args, w > 0.f, "width must be positive");
  PSTAL_CHECK(args, nx == T * D, "x must hold T * D values");
  PSTAL_CHECK(args, nz == T * K, "z must hold T * K values");
  PSTAL_CHECK(args, nb == K * D, "b must hold K * D values");
  PSTAL_CHECK(args, noff == T && nsc == T, "off and scale must hold T values");
  for (int64_t t = 0; t < T; t++)
    PSTAL_CHECK(args, off[t] >= 0 && (int64_t)off[t] + D <= ntab, "row " + std::to_string(t) + ": table offset out of range");
  if (T == 0) return args.env().Undefined();
  synth_features(SynthFeatures{nx, nz, nb, ntab, noff, nsc, x, z, b, table, off, scale, T, D, K, phi, offset, w, s});
  return args.env().Undefined();
}

}  // namespace pstal
