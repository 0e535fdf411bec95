// scratch.h: per-thread scratch memory reused across calls, so hot ops allocate nothing per call.
#pragma once
#include <cstdlib>
#include <cstddef>

namespace pstal {

struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      cap = (n + 15) / 16 * 16;
      p = static_cast<float*>(std::aligned_alloc(64, cap * sizeof(float)));
    }
    return p;
  }
};

}  // namespace pstal
