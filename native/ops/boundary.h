// ---------------------------------------------------------------------------------------------
// boundary.h: ABA, the boundary adaptation of proposal rows [start, end, class, score]
// (lib/postprocess/boundary.ts), in double precision. Arguments read once by ops/boundary.cc;
// kernels native/cpu/boundary.cc (the reference) and native/cuda/boundary.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <vector>

namespace pstal {

// n checked rows in, n adapted rows out (same order).
struct BoundaryAdaptation {
  const double* rows;
  int64_t n;
  double thr;  // IoU threshold in [0, 1)
};
std::vector<double> boundary_adaptation(const BoundaryAdaptation& a);

}  // namespace pstal
