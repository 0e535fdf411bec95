// ---------------------------------------------------------------------------------------------
// synth.h: the per-element part of synthetic features (lib/data/synth.ts); CPU only.
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/synth.cc; the kernels behind these signatures are native/cpu/synth.cc (the reference) and
// native/cuda/synth.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// synth_features(x Float32Array [T*D] (written), z Float32Array [T*K], b Float32Array [K*D],
//   table Float32Array, off Int32Array [T], scale Float32Array [T], T, D, K, phi, offset, width, out_scale)
struct SynthFeatures {
  int64_t nx;
  int64_t nz;
  int64_t nb;
  int64_t ntab;
  int64_t noff;
  int64_t nsc;
  float* x;
  const float* z;
  const float* b;
  const float* table;
  const int32_t* off;
  const float* scale;
  int64_t T;
  int64_t D;
  int64_t K;
  float phi;
  float offset;
  float w;
  float s;
};
void synth_features(const SynthFeatures& a);

}  // namespace pstal
