// ---------------------------------------------------------------------------------------------
// memory.cu: the CUDA backend's allocator (common/memory.h: NativeBuffer, common/buffer.cc, is
// written over it, so its `data` is a device pointer here), the backend's one stream, the start-up
// device check, and the caching device allocator behind device_alloc / device_free.
//
// Invariants:
// - Everything runs on stream() (a blocking stream, so a stray legacy-default-stream call still
//   orders against it). A block freed to the cache may still be read by queued kernels; it is
//   only handed out again to work queued later on the same stream, so reuse is ordered.
// - cudaMalloc and cudaFree are slow (cudaFree synchronises the device), so freed blocks are kept
//   by size class and reused. Sizes are rounded to a class (512 B below 1 MiB, 1/8 of the next
//   power of two above it), because videos differ in length and exact sizes would rarely repeat.
//   PSTAL_CUDA_CACHE_MB caps what is kept (default 8192); release_cached() frees it all.
// - Out of memory first releases the cache and retries once, then throws OpError: a JS Error,
//   never an abort. fail_cuda clears the non-sticky error so the next launch check is not blamed.
// - The allocator state is heap-allocated and never destroyed: finalizers may run at exit after
//   static destructors, and cudaFree after the runtime unloads must not be attempted.
// ---------------------------------------------------------------------------------------------
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/memory.h"
#include "cuda/common.cuh"

namespace pstal {
namespace cuda {

// ---- errors and the stream -------------------------------------------------------------------

[[noreturn]] void fail_cuda(cudaError_t e, const char* what, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error (e.g. out of memory) so later checks see their own
  const char* base = std::strrchr(file, '/');
  throw OpError(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") in " + what +
                " at " + (base ? base + 1 : file) + ":" + std::to_string(line));
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st = nullptr;
    PSTAL_CUDA_CHECK(cudaStreamCreate(&st));  // a throw here leaves `s` uninitialised: retried next call
    return st;
  }();
  return s;
}

// ---- the caching allocator -------------------------------------------------------------------

namespace {

size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= ((size_t)1 << 20)) return (bytes + 511) / 512 * 512;
  size_t p2 = (size_t)1 << 20;
  while (p2 < bytes) p2 <<= 1;
  size_t granule = p2 / 8;
  return (bytes + granule - 1) / granule * granule;
}

struct DeviceCache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;     // size class -> block
  std::unordered_map<void*, size_t> live;       // handed-out block -> its size class
  size_t cached = 0;
  size_t live_bytes = 0;  // handed out, for the out-of-memory message
  size_t limit = [] {
    const char* e = std::getenv("PSTAL_CUDA_CACHE_MB");
    return (size_t)(e && std::atoll(e) >= 0 ? std::atoll(e) : 8192) << 20;
  }();

  // Frees every cached block (mu held).
  void clear_locked() {
    for (auto& [b, p] : free_blocks) cudaFree(p);  // errors here are not actionable
    free_blocks.clear();
    cached = 0;
  }

  void* take(size_t bytes) {
    const size_t want = size_class(bytes);
    std::lock_guard<std::mutex> lock(mu);
    // Smallest cached block that fits, if it wastes at most half of itself.
    auto it = free_blocks.lower_bound(want);
    if (it != free_blocks.end() && it->first <= want + want / 2) {
      void* p = it->second;
      live[p] = it->first;
      live_bytes += it->first;
      cached -= it->first;
      free_blocks.erase(it);
      return p;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, want);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      clear_locked();
      e = cudaMalloc(&p, want);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      cudaGetLastError();
      throw OpError(std::string("device allocation of ") + std::to_string(want) + " bytes failed: " +
                    cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + "); device free " + std::to_string(free_b) +
                    " of " + std::to_string(total_b) + " bytes, " + std::to_string(live_bytes) +
                    " bytes in live blocks");
    }
    live[p] = want;
    live_bytes += want;
    return p;
  }

  void give(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu);
    auto it = live.find(p);
    if (it == live.end()) return;  // not ours: never free what we did not allocate
    size_t bytes = it->second;
    live.erase(it);
    live_bytes -= bytes;
    if (cached + bytes > limit) {
      cudaFree(p);
      cudaGetLastError();
      return;
    }
    free_blocks.emplace(bytes, p);
    cached += bytes;
  }
};

DeviceCache& cache() {
  static DeviceCache* c = new DeviceCache();  // never destroyed (see the file comment)
  return *c;
}

__global__ void fill_kernel(float* __restrict__ x, int64_t n, float v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = v;
}

}  // namespace

void* device_alloc(size_t bytes) { return cache().take(bytes); }
// The block's real size is looked up; `bytes` is what the caller asked for and is not needed.
void device_free(void* p, size_t /*bytes*/) { cache().give(p); }

}  // namespace cuda

namespace mem {

const char* backend_name() { return "cuda"; }

// Refuses to start where no CUDA device can be used (no driver, no GPU), so that
// lib/runtime/backend.ts reports device 'cuda' as unavailable instead of failing on the first op.
void init() {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw OpError(std::string("no usable CUDA device (cudaGetDeviceCount: ") +
                  (e == cudaSuccess ? "0 devices" : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e)) +
                  ")");
  }
}

float* alloc(int64_t n) { return static_cast<float*>(cuda::device_alloc((size_t)n * sizeof(float))); }
void free(float* p, int64_t n) { cuda::device_free(p, (size_t)n * sizeof(float)); }

// A pageable source is staged before cudaMemcpyAsync returns, so the host array may go away.
void copy_in(float* dst, const float* host, int64_t n) {
  if (n) PSTAL_CUDA_CHECK(cudaMemcpyAsync(dst, host, (size_t)n * sizeof(float), cudaMemcpyHostToDevice, cuda::stream()));
}

// Synchronous: queued after every pending op on the stream and waited for.
void copy_out(float* host, const float* src, int64_t n) { cuda::download(host, src, n); }

void fill(float* p, int64_t n, float v) {
  if (n == 0) return;
  if (v == 0.f && !std::signbit(v)) {
    PSTAL_CUDA_CHECK(cudaMemsetAsync(p, 0, (size_t)n * sizeof(float), cuda::stream()));
  } else {
    cuda::fill_kernel<<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(p, n, v);
    PSTAL_CUDA_LAUNCH();
  }
}

int64_t cached_bytes() {
  std::lock_guard<std::mutex> lock(cuda::cache().mu);
  return (int64_t)cuda::cache().cached;
}

void release_cached() {
  std::lock_guard<std::mutex> lock(cuda::cache().mu);
  cuda::cache().clear_locked();
}

}  // namespace mem
}  // namespace pstal
