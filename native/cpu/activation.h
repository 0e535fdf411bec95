// activation.h: relu and its derivative as bit masks, shared by the unary kernels
// (cpu/elementwise.cc) and the fused linear epilogue (cpu/matmul.cc), so both give the same bits.
// Written `x > 0 ? x : 0` and `(float)(x > 0)`, GCC compiles a compare-and-branch per element, 5 ns
// an element in training where the signs are random; bit masks vectorize. The same values: x where
// x > 0, else +0 (NaN and -0 too); 1.0f or +0.0f, so dy * df keeps dy * 0's sign.
#pragma once
#include <cstdint>
#include <cstring>

namespace pstal {

inline float relu_f(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  b &= -(uint32_t)(x > 0.f);
  std::memcpy(&x, &b, sizeof b);
  return x;
}

// relu'(x) from x, or equally from y = relu(x) (y > 0 exactly where x > 0)
inline float relu_df(float x) {
  uint32_t m = -(uint32_t)(x > 0.f) & 0x3f800000u;  // the bits of 1.0f or of +0.0f
  float f;
  std::memcpy(&f, &m, sizeof f);
  return f;
}

}  // namespace pstal
