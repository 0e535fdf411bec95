// device.h: what only the CUDA backend has (its ops are registered by ops/device.cu, which only the
// CUDA addon compiles). Kernels: native/cuda/device.cu.
#pragma once
#include "common/info.h"

namespace pstal {

// { name, computeCapability: '9.0', major, minor, multiprocessors, totalBytes, freeBytes,
//   device, driverVersion, runtimeVersion }
Info device_info();
// TF32 tensor-core GEMMs (faster, ~1e-3 relative error) for the calling thread's GEMMs; off by
// default (PSTAL_TF32=1: on); other threads keep their own setting.
void set_tf32(bool on);
// Waits for every op the calling thread queued (its stream): benchmarks call it before reading the
// clock. Other threads' work is not waited for.
void synchronize();

}  // namespace pstal
