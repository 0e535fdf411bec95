// ---------------------------------------------------------------------------------------------
// common.cuh: what every CUDA kernel file shares. The CUDA backend implements the kernels declared
// in native/ops/<family>.h file by file (native/cuda/<family>.cu beside native/cpu/<family>.cc);
// their arguments were read and checked once, in native/ops/<family>.cc, so lib/ops calls
// `backend(device).op(...)` without knowing which backend runs. NativeBuffer::data is a device
// pointer here (memory.cu), and argument checks never dereference it. Napi-free.
//
// - One stream per host thread (stream(), memory.cu): a thread's ops are ordered on its stream
//   without explicit synchronisation, and a host read (NativeBuffer.read, a scalar result)
//   synchronises by copying on it. Node worker threads running ops at once each have their own
//   stream (and cuBLAS handle, matmul.cu); nothing a kernel file keeps is shared between threads.
// - Every CUDA call is checked (PSTAL_CUDA_CHECK); a failure becomes an OpError, which the
//   registry turns into a JS Error that names the op. Kernel launches are checked with
//   PSTAL_CUDA_LAUNCH (cudaGetLastError), so a bad launch configuration is never silent.
// - Temporary device memory comes from the same caching allocator as buffers (device_alloc /
//   device_free, or a DeviceScratch that frees itself), so no op calls cudaMalloc in steady state.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "common/counters.h"
#include "common/error.h"

namespace pstal {
namespace cuda {

// The calling thread's stream (created on its first use; memory.cu). Every launch, copy and GEMM
// of an op goes on it.
cudaStream_t stream();

// Throws OpError naming the CUDA call and its error string.
[[noreturn]] void fail_cuda(cudaError_t e, const char* what, const char* file, int line);

#define PSTAL_CUDA_CHECK(expr)                                                 \
  do {                                                                         \
    cudaError_t pstal_e_ = (expr);                                             \
    if (pstal_e_ != cudaSuccess) ::pstal::cuda::fail_cuda(pstal_e_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a <<<...>>> launch: checks it and counts it for the op that launched it (common/counters.h).
#define PSTAL_CUDA_LAUNCH()                  \
  do {                                       \
    ::pstal::count_launch();                 \
    PSTAL_CUDA_CHECK(cudaGetLastError());    \
  } while (0)

// Blocks of `threads` covering n items (at least one block; capped for grid-stride loops).
inline unsigned blocks_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return (unsigned)b;
}

// Device memory from the caching allocator (memory.cu). Sizes in bytes.
void* device_alloc(size_t bytes);
void device_free(void* p, size_t bytes);

// Temporary device memory for one op call; returned to the cache when it goes out of scope.
struct DeviceScratch {
  void* p = nullptr;
  size_t bytes = 0;
  DeviceScratch() = default;
  explicit DeviceScratch(size_t b) : p(b ? device_alloc(b) : nullptr), bytes(b) {}
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  DeviceScratch(DeviceScratch&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; o.bytes = 0; }
  DeviceScratch& operator=(DeviceScratch&& o) noexcept {
    if (this != &o) {
      if (p) device_free(p, bytes);
      p = o.p;
      bytes = o.bytes;
      o.p = nullptr;
      o.bytes = 0;
    }
    return *this;
  }
  ~DeviceScratch() {
    if (p) device_free(p, bytes);
  }
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

// Copies a host array to fresh device scratch (for index lists and small parameter arrays that
// JS passes as typed arrays) on the calling thread's stream.
// The host array must stay alive until the copy is done: JS typed arrays live for the op call,
// and ops that upload do not return before the stream has consumed them (they either read a result
// back, which synchronises, or call cudaStreamSynchronize before returning).
template <typename T>
inline DeviceScratch upload(const T* host, int64_t count) {
  DeviceScratch dst((size_t)count * sizeof(T));
  if (count) PSTAL_CUDA_CHECK(cudaMemcpyAsync(dst.p, host, (size_t)count * sizeof(T), cudaMemcpyHostToDevice, stream()));
  return dst;
}

// Reads `count` values from device memory to the host, synchronously (this thread's stream is drained).
template <typename T>
inline void download(T* host, const T* device, int64_t count) {
  if (count) PSTAL_CUDA_CHECK(cudaMemcpyAsync(host, device, (size_t)count * sizeof(T), cudaMemcpyDeviceToHost, stream()));
  PSTAL_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

}  // namespace cuda
}  // namespace pstal
