// ---------------------------------------------------------------------------------------------
// tensor.cu: the CUDA kernels of native/ops/tensor.h (the CPU twin, native/cpu/tensor.cc, is the
// reference), on the calling thread's stream.
// ---------------------------------------------------------------------------------------------
#include <climits>

#include "cuda/common.cuh"
#include "ops/tensor.h"

namespace pstal {
namespace {

// Smallest index of a NaN/Inf: each thread's first hit is its smallest (grid-stride order), a
// warp takes the minimum, one atomicMin per warp.
__global__ void first_nonfinite_kernel(const float* __restrict__ x, int64_t n, unsigned long long* first) {
  unsigned long long best = ULLONG_MAX;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    if (!isfinite(x[i])) {
      best = (unsigned long long)i;
      break;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    unsigned long long other = __shfl_down_sync(0xffffffffu, best, o);
    best = other < best ? other : best;
  }
  if ((threadIdx.x & 31) == 0 && best != ULLONG_MAX) atomicMin(first, best);
}

}  // namespace

int64_t first_nonfinite(const FirstNonfinite& a) {
  if (a.n == 0) return -1;
  cuda::DeviceScratch first(sizeof(unsigned long long));
  PSTAL_CUDA_CHECK(cudaMemsetAsync(first.p, 0xff, sizeof(unsigned long long), cuda::stream()));  // ULLONG_MAX
  first_nonfinite_kernel<<<cuda::blocks_for(a.n), 256, 0, cuda::stream()>>>(a.x, a.n, first.as<unsigned long long>());
  PSTAL_CUDA_LAUNCH();
  unsigned long long host = 0;
  cuda::download(&host, first.as<unsigned long long>(), 1);
  return host == ULLONG_MAX ? -1 : (int64_t)host;
}

void copy(const Copy& a) {
  if (a.n)
    PSTAL_CUDA_CHECK(cudaMemcpyAsync(a.dst + a.dst_offset, a.src + a.src_offset, (size_t)a.n * sizeof(float),
                                     cudaMemcpyDeviceToDevice, cuda::stream()));
}

}  // namespace pstal
