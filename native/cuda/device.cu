// device.cu: the CUDA kernels of native/ops/device.h.
#include <string>

#include "cuda/common.cuh"
#include "cuda/gemm.h"
#include "ops/device.h"

namespace pstal {

Info device_info() {
  int dev = 0, driver = 0, runtime = 0;
  PSTAL_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  PSTAL_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  size_t free_b = 0, total_b = 0;
  PSTAL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  PSTAL_CUDA_CHECK(cudaDriverGetVersion(&driver));
  PSTAL_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  Info i;
  i.str("name", prop.name).str("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
  i.num("major", prop.major).num("minor", prop.minor).num("multiprocessors", prop.multiProcessorCount);
  i.num("totalBytes", (double)total_b).num("freeBytes", (double)free_b).num("device", dev);
  i.num("driverVersion", driver).num("runtimeVersion", runtime);
  return i;
}

void set_tf32(bool on) { cuda::set_tf32(on); }

// this thread's stream only (memory.cu)
void synchronize() { PSTAL_CUDA_CHECK(cudaStreamSynchronize(cuda::stream())); }

}  // namespace pstal
