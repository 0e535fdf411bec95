// ---------------------------------------------------------------------------------------------
// nms.h: class-wise soft-NMS of proposal rows [start, end, class, score] (lib/postprocess/nms.ts),
// in double precision. Arguments read once by ops/nms.cc; kernels native/cpu/nms.cc (the
// reference) and native/cuda/nms.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <vector>

namespace pstal {

struct NmsParams {
  int method;                   // 0 gaussian, 1 linear, 2 hard
  double sigma, iou_thr, plus;  // plus: 1 for the "+1" convention, 0 for exact IoU
};

// n checked rows in; n rows out, each class's rows in soft-NMS order, classes in order of first
// appearance.
struct SoftNms {
  const double* rows;
  int64_t n;
  NmsParams p;
};
std::vector<double> soft_nms(const SoftNms& a);

}  // namespace pstal
