// ---------------------------------------------------------------------------------------------
// buffer.cu: NativeBuffer for the CUDA addon (same JS interface as native/common/buffer.cc, but
// `data` is a device pointer), the backend's one stream, and the caching device allocator behind
// device_alloc / device_free.
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
                    " of " + std::to_string(total_b) + " bytes, " + std::to_string(NativeBuffer::live_bytes) +
                    " bytes in live buffers");
    }
    live[p] = want;
    return p;
  }

  void give(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu);
    auto it = live.find(p);
    if (it == live.end()) return;  // not ours: never free what we did not allocate
    size_t bytes = it->second;
    live.erase(it);
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

int64_t cached_bytes() {
  std::lock_guard<std::mutex> lock(cuda::cache().mu);
  return (int64_t)cuda::cache().cached;
}

void release_cached() {
  std::lock_guard<std::mutex> lock(cuda::cache().mu);
  cuda::cache().clear_locked();
}

// ---- NativeBuffer ----------------------------------------------------------------------------

Napi::FunctionReference* NativeBuffer::constructor = nullptr;
int64_t NativeBuffer::live_bytes = 0;
int64_t NativeBuffer::live_count = 0;

Napi::Function NativeBuffer::Define(Napi::Env env) {
  Napi::Function fn = DefineClass(env, "NativeBuffer",
                                  {InstanceMethod("dispose", &NativeBuffer::Dispose),
                                   InstanceMethod("read", &NativeBuffer::Read),
                                   InstanceMethod("write", &NativeBuffer::Write),
                                   InstanceMethod("fill", &NativeBuffer::Fill),
                                   InstanceAccessor("size", &NativeBuffer::GetSize, nullptr),
                                   InstanceAccessor("disposed", &NativeBuffer::GetDisposed, nullptr)});
  constructor = new Napi::FunctionReference(Napi::Persistent(fn));
  return fn;
}

// new NativeBuffer(size) -> zero-filled; new NativeBuffer(Float32Array) -> copy.
NativeBuffer::NativeBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeBuffer>(info) {
  Napi::Env env = info.Env();
  const float* src = nullptr;
  if (info.Length() >= 1 && info[0].IsNumber()) {
    double n = info[0].As<Napi::Number>().DoubleValue();
    if (!(n >= 0) || n != (double)(int64_t)n || n > (double)(1LL << 40)) {
      throw Napi::Error::New(env, "NativeBuffer: size must be a non-negative integer, received " +
                                      std::to_string(n));
    }
    size = (int64_t)n;
  } else if (info.Length() >= 1 && info[0].IsTypedArray() &&
             info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    auto arr = info[0].As<Napi::Float32Array>();
    size = (int64_t)arr.ElementLength();
    src = arr.Data();
  } else {
    throw Napi::TypeError::New(env, "NativeBuffer: expected a size or a Float32Array");
  }
  const size_t bytes = (size_t)size * sizeof(float);
  try {
    data = static_cast<float*>(cuda::device_alloc(bytes));
    // A pageable source is staged before cudaMemcpyAsync returns, so the array may go away.
    if (src && bytes) PSTAL_CUDA_CHECK(cudaMemcpyAsync(data, src, bytes, cudaMemcpyHostToDevice, cuda::stream()));
    else if (bytes) PSTAL_CUDA_CHECK(cudaMemsetAsync(data, 0, bytes, cuda::stream()));
  } catch (const std::exception& e) {
    if (data) cuda::device_free(data, bytes);
    data = nullptr;
    disposed_ = true;  // so the destructor does not count it
    throw Napi::Error::New(env, std::string("NativeBuffer: ") + e.what());
  }
  live_bytes += (int64_t)bytes;
  live_count += 1;
  Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)bytes);
}

void NativeBuffer::release(Napi::Env env) {
  if (disposed_) return;
  disposed_ = true;
  cuda::device_free(data, (size_t)size * sizeof(float));
  data = nullptr;
  live_bytes -= size * 4;
  live_count -= 1;
  if (env != nullptr) Napi::MemoryManagement::AdjustExternalMemory(env, -size * 4);
}

NativeBuffer::~NativeBuffer() {
  if (!disposed_) {
    // Finalizer: back to the cache (never throws; the cache outlives everything).
    cuda::device_free(data, (size_t)size * sizeof(float));
    data = nullptr;
    disposed_ = true;
    live_bytes -= size * 4;
    live_count -= 1;
  }
}

Napi::Value NativeBuffer::Dispose(const Napi::CallbackInfo& info) {
  release(info.Env());  // idempotent
  return info.Env().Undefined();
}

// read() -> Float32Array copy of the whole buffer; read(offset, count) -> a part. Synchronous:
// the copy is queued after every pending op on the stream and waited for.
Napi::Value NativeBuffer::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) throw Napi::Error::New(env, "NativeBuffer.read: buffer was disposed");
  int64_t off = 0, n = size;
  if (info.Length() >= 2) {
    off = info[0].As<Napi::Number>().Int64Value();
    n = info[1].As<Napi::Number>().Int64Value();
    if (off < 0 || n < 0 || off + n > size)
      throw Napi::RangeError::New(env, "NativeBuffer.read: range [" + std::to_string(off) + ", " +
                                           std::to_string(off + n) + ") outside buffer of " + std::to_string(size));
  }
  auto out = Napi::Float32Array::New(env, (size_t)n);
  try {
    cuda::download(out.Data(), data + off, n);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("NativeBuffer.read: ") + e.what());
  }
  return out;
}

// write(Float32Array, offset = 0)
Napi::Value NativeBuffer::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) throw Napi::Error::New(env, "NativeBuffer.write: buffer was disposed");
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "NativeBuffer.write: expected a Float32Array");
  auto arr = info[0].As<Napi::Float32Array>();
  int64_t off = info.Length() >= 2 ? info[1].As<Napi::Number>().Int64Value() : 0;
  int64_t n = (int64_t)arr.ElementLength();
  if (off < 0 || off + n > size)
    throw Napi::RangeError::New(env, "NativeBuffer.write: " + std::to_string(n) + " values at offset " +
                                         std::to_string(off) + " do not fit a buffer of " + std::to_string(size));
  try {
    if (n) PSTAL_CUDA_CHECK(cudaMemcpyAsync(data + off, arr.Data(), (size_t)n * sizeof(float), cudaMemcpyHostToDevice,
                                            cuda::stream()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("NativeBuffer.write: ") + e.what());
  }
  return env.Undefined();
}

Napi::Value NativeBuffer::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) throw Napi::Error::New(env, "NativeBuffer.fill: buffer was disposed");
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "NativeBuffer.fill: expected a number");
  float v = (float)info[0].As<Napi::Number>().DoubleValue();
  try {
    if (size == 0) return env.Undefined();
    if (v == 0.f && !std::signbit(v)) {
      PSTAL_CUDA_CHECK(cudaMemsetAsync(data, 0, (size_t)size * sizeof(float), cuda::stream()));
    } else {
      cuda::fill_kernel<<<cuda::blocks_for(size), 256, 0, cuda::stream()>>>(data, size, v);
      PSTAL_CUDA_LAUNCH();
    }
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("NativeBuffer.fill: ") + e.what());
  }
  return env.Undefined();
}

Napi::Value NativeBuffer::GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)size); }
Napi::Value NativeBuffer::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

}  // namespace pstal
