// simd.cc: the PSTAL_SIMD cap on the CPU's vector instructions (simd.h).
#include "cpu/simd.h"

#include <cstdlib>
#include <cstring>

namespace pstal {
namespace {

enum Level { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

Level detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  Level have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                   ? kAvx512
                   : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? kAvx2 : kGeneric);
#else
  Level have = kGeneric;
#endif
  // An unknown value leaves the CPU's level (the CLI refuses it before the addon loads).
  const char* e = std::getenv("PSTAL_SIMD");
  Level cap = !e ? kAvx512 : !std::strcmp(e, "generic") ? kGeneric : !std::strcmp(e, "avx2") ? kAvx2 : kAvx512;
  return have < cap ? have : cap;
}

Level level() {
  static const Level l = detect();
  return l;
}

}  // namespace

bool simd_avx2() { return level() >= kAvx2; }
bool simd_avx512() { return level() >= kAvx512; }
const char* simd_level() { return level() == kAvx512 ? "avx512" : level() == kAvx2 ? "avx2" : "generic"; }

}  // namespace pstal
