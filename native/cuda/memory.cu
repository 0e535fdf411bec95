// ---------------------------------------------------------------------------------------------
// memory.cu: the CUDA backend's allocator (common/memory.h: NativeBuffer, common/buffer.cc, is
// written over it, so its `data` is a device pointer here), the per-thread streams, the start-up
// device check, and the caching device allocator behind device_alloc / device_free.
//
// Invariants:
// - Each host thread queues its work on a stream of its own (stream(): created on that thread's
//   first use), so that Node worker threads running ops at once never share a stream; one thread's
//   ops are ordered on its stream without explicit synchronisation. Blocking streams, so a stray
//   legacy-default-stream call still orders against them. A NativeBuffer never leaves the thread
//   (the isolate) that made it: its ops, its dispose and its finalizer all run there.
// - cudaMalloc and cudaFree are slow (cudaFree synchronises the device), so freed blocks are kept
//   by size class and reused. Sizes are rounded to a class (512 B below 1 MiB, 1/8 of the next
//   power of two above it), because videos differ in length and exact sizes would rarely repeat.
//   PSTAL_CUDA_CACHE_MB caps what is kept (default 8192, all streams together); release_cached()
//   frees it all.
// - A block freed to the cache may still be read by kernels queued before the free, on the stream
//   of the thread that freed it. So a cached block remembers that stream and is handed out again
//   only to the same stream (work queued later on it runs after those kernels), or once no queued
//   work can touch it (kIdle: its stream was synchronised). Blocks cached by another thread's
//   stream are never handed across; they are freed only after synchronising the device (the
//   out-of-memory path and release_cached()).
// - When a thread's Node environment goes away (a worker thread ends; the env cleanup hook of
//   common/addon.cc calls mem::thread_exit() on that thread), its stream is synchronised, its
//   cuBLAS handle and stream are destroyed, and its cached blocks become kIdle, for any thread to
//   reuse. The blocks are kept, not freed: cudaFree would stall every other thread's work on a
//   device-wide synchronisation, and a pool that replaces a worker reuses them at once;
//   release_cached() or the out-of-memory path frees them. The stream and handle are not kept
//   until release_cached(): a pool started and stopped again and again would leak a stream and a
//   cuBLAS handle (with its workspace) per worker, and blocks tagged with streams no thread uses.
//   Buffers that the environment finalizes after the hook come back kIdle (their stream is gone).
// - Out of memory first releases the cache and retries once, then throws OpError: a JS Error,
//   never an abort. fail_cuda clears the non-sticky error so the next launch check is not blamed.
// - Nothing CUDA runs in a static or thread_local destructor: the allocator state is
//   heap-allocated and never destroyed, the per-thread state is plain pointers (finalizers may run
//   at exit after static destructors, and CUDA calls after the runtime unloads must not be made).
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
#include "cuda/gemm.h"

namespace pstal {
namespace cuda {

// ---- errors and the streams ------------------------------------------------------------------

[[noreturn]] void fail_cuda(cudaError_t e, const char* what, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error (e.g. out of memory) so later checks see their own
  const char* base = std::strrchr(file, '/');
  throw OpError(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") in " + what +
                " at " + (base ? base + 1 : file) + ":" + std::to_string(line));
}

namespace {
// This thread's stream (null until its first use, and again after thread_exit). A plain pointer:
// nothing runs for it when the thread ends.
thread_local cudaStream_t thread_stream = nullptr;
}  // namespace

cudaStream_t stream() {
  if (!thread_stream) {
    cudaStream_t st = nullptr;
    PSTAL_CUDA_CHECK(cudaStreamCreate(&st));  // a throw leaves none: retried on the next call
    thread_stream = st;
  }
  return thread_stream;
}

// ---- the caching allocator -------------------------------------------------------------------

namespace {

// The cache's key for blocks no queued work can touch (their stream was synchronised, or their
// thread had no stream left when it freed them): any stream may take them. Never a stream of ours
// (the legacy default stream, which is also null, is not used here).
constexpr cudaStream_t kIdle = nullptr;

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
  // stream a block was freed on (or kIdle) -> size class -> block
  std::map<cudaStream_t, std::multimap<size_t, void*>> free_blocks;
  std::unordered_map<void*, size_t> live;  // handed-out block -> its size class
  size_t cached = 0;      // all streams together
  size_t live_bytes = 0;  // handed out, for the out-of-memory message
  size_t limit = [] {
    const char* e = std::getenv("PSTAL_CUDA_CACHE_MB");
    return (size_t)(e && std::atoll(e) >= 0 ? std::atoll(e) : 8192) << 20;
  }();

  // Frees every cached block, every stream's (mu held). Kernels queued on other threads' streams
  // may still read the blocks those threads freed: the device is synchronised first (cudaFree
  // would do it too; this does not rely on it).
  void clear_locked() {
    if (free_blocks.empty()) return;
    cudaDeviceSynchronize();
    for (auto& [s, blocks] : free_blocks)
      for (auto& [b, p] : blocks) cudaFree(p);  // errors here are not actionable
    free_blocks.clear();
    cached = 0;
    cudaGetLastError();
  }

  // The smallest block cached under `s` that fits `want`, if it wastes at most half of itself:
  // taken out of the cache and handed out (mu held); null if none.
  void* take_cached(cudaStream_t s, size_t want) {
    auto pool = free_blocks.find(s);
    if (pool == free_blocks.end()) return nullptr;
    auto it = pool->second.lower_bound(want);
    if (it == pool->second.end() || it->first > want + want / 2) return nullptr;
    void* p = it->second;
    const size_t bytes = it->first;
    pool->second.erase(it);
    if (pool->second.empty()) free_blocks.erase(pool);
    cached -= bytes;
    live[p] = bytes;
    live_bytes += bytes;
    return p;
  }

  void* take(size_t bytes) {
    const size_t want = size_class(bytes);
    const cudaStream_t s = stream();  // this thread's; made outside the lock (it may throw)
    std::lock_guard<std::mutex> lock(mu);
    if (void* p = take_cached(s, want)) return p;
    if (void* p = take_cached(kIdle, want)) return p;
    // (another stream's block is never taken: its kernels may still be queued)
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

  // Back to the cache under the calling thread's stream: the only stream that can have work on
  // the block queued (buffers and scratch never leave their thread). A thread without a stream
  // (after thread_exit) has nothing queued: the block is kIdle.
  void give(void* p) {
    if (!p) return;
    const cudaStream_t s = thread_stream ? thread_stream : kIdle;
    std::lock_guard<std::mutex> lock(mu);
    auto it = live.find(p);
    if (it == live.end()) return;  // not ours: never free what we did not allocate
    size_t bytes = it->second;
    live.erase(it);
    live_bytes -= bytes;
    if (cached + bytes > limit) {
      if (s != kIdle) cudaStreamSynchronize(s);  // kernels queued on it may still read the block
      cudaFree(p);
      cudaGetLastError();
      return;
    }
    free_blocks[s].emplace(bytes, p);
    cached += bytes;
  }

  // The blocks cached under `s`, which has been synchronised (and is about to be destroyed), are
  // now kIdle (mu held).
  void retire_locked(cudaStream_t s) {
    auto pool = free_blocks.find(s);
    if (s == kIdle || pool == free_blocks.end()) return;
    std::multimap<size_t, void*> blocks = std::move(pool->second);
    free_blocks.erase(pool);
    free_blocks[kIdle].insert(blocks.begin(), blocks.end());
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

// Synchronous: queued after every pending op on this thread's stream and waited for.
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

// This thread's environment is going away (see the file comment): its queued work is waited for,
// its cuBLAS handle and stream are destroyed (the handle first: it is bound to the stream), and
// the blocks cached under its stream become kIdle. Errors are ignored: there is no caller to tell,
// and after a sticky error the context is lost anyway. A later op on this thread would make a new
// stream (none does: the environment is gone).
void thread_exit() {
  const cudaStream_t s = cuda::thread_stream;
  if (s) cudaStreamSynchronize(s);
  cuda::release_thread_blas();
  if (s) {
    try {
      std::lock_guard<std::mutex> lock(cuda::cache().mu);
      cuda::cache().retire_locked(s);
    } catch (...) {
      // no memory for a map node: the blocks stay under `s`, unused until release_cached()
    }
    cudaStreamDestroy(s);
    cuda::thread_stream = nullptr;
  }
  cudaGetLastError();
}

}  // namespace mem
}  // namespace pstal
