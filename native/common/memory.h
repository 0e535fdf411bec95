// ---------------------------------------------------------------------------------------------
// memory.h: the allocator interface under NativeBuffer (common/buffer.cc), one implementation per
// backend: native/cpu/memory.cc (host memory, a caching allocator) and native/cuda/memory.cu
// (device memory on the calling thread's stream, a caching allocator). Napi-free. Sizes count floats.
// Every function may throw OpError (out of memory, a CUDA error); none aborts.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>

namespace pstal {
namespace mem {

// The backend's name ("cpu", "cuda") and its start-up check: init() throws OpError where the
// backend cannot run (the CUDA addon on a machine without a usable GPU).
const char* backend_name();
void init();

float* alloc(int64_t n);               // uninitialised storage for n floats
void free(float* p, int64_t n);        // back to the cache; p from alloc(n)
void copy_in(float* dst, const float* host, int64_t n);   // host -> storage
void copy_out(float* host, const float* src, int64_t n);  // storage -> host (completes before it returns)
void fill(float* p, int64_t n, float v);

int64_t cached_bytes();  // held for reuse
void release_cached();   // gives every cached block back to the system

// The calling thread's Node environment is going away (a worker thread ends): what the backend
// keeps per thread is let go of (CUDA: the thread's stream and cuBLAS handle; its cached blocks
// stay, for other threads). Called by the env cleanup hook of common/addon.cc, on that thread;
// buffers the environment finalizes after it are freed as usual. Never throws.
void thread_exit();

}  // namespace mem
}  // namespace pstal
