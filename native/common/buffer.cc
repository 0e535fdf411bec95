// ---------------------------------------------------------------------------------------------
// buffer.cc: NativeBuffer, the float32 storage behind every CPU tensor.
//
// Released deterministically by dispose() (TypeScript scopes call it when a step ends); the
// finalizer is only a fallback. live_bytes/live_count let tests prove memory stays flat.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cstdlib>
#include <list>
#include <cstring>
#include <map>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common/op.h"

namespace pstal {

// ---- a caching allocator ---------------------------------------------------------------------
// A training step allocates the same shapes every step. Freed blocks are kept by byte size and
// handed out again, so steady-state steps make no malloc/free calls and touch no fresh pages
// (a fresh multi-megabyte block costs a page fault per 4 KiB). PSTAL_BUFFER_CACHE_MB caps what
// is kept (default 2048); release_cached() returns it all to the system.
namespace {
struct BlockCache {
  BlockCache() {
#if defined(__GLIBC__)
    // glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB), after
    // which blocks of a few MiB come from the heap, where videos of varying length fragment it:
    // measured at D = 2048, stage-1 training grew to 12.6 GB resident against 4.4 GB with a fixed
    // threshold (live tensors 1 GB, cache 2 GB). A fixed threshold makes every block of 1 MiB or
    // more its own mapping, returned to the system when it is freed.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  }
  // Free blocks, least recently released first, and by size for lookup. When the cap would be
  // exceeded the oldest blocks go back to the system, so a run whose sizes drift (a test pass over
  // videos of every length) keeps the sizes it uses now rather than the ones it used first.
  struct Entry {
    size_t bytes;
    float* p;
  };
  std::list<Entry> lru;
  std::map<size_t, std::vector<std::list<Entry>::iterator>> by_size;
  size_t cached = 0;
  size_t limit = [] {
    const char* e = std::getenv("PSTAL_BUFFER_CACHE_MB");
    return (size_t)(e && std::atoll(e) >= 0 ? std::atoll(e) : 2048) << 20;
  }();
  float* take(size_t bytes) {
    auto it = by_size.find(bytes);
    if (it == by_size.end() || it->second.empty()) return static_cast<float*>(std::aligned_alloc(64, bytes));
    auto entry = it->second.back();
    it->second.pop_back();
    float* p = entry->p;
    lru.erase(entry);
    cached -= bytes;
    return p;
  }
  void evict_oldest() {
    auto& same = by_size[lru.front().bytes];
    same.erase(std::find(same.begin(), same.end(), lru.begin()));
    std::free(lru.front().p);
    cached -= lru.front().bytes;
    lru.pop_front();
  }
  void give(float* p, size_t bytes) {
    if (bytes > limit) {
      std::free(p);
      return;
    }
    while (cached + bytes > limit) evict_oldest();
    lru.push_back({bytes, p});
    by_size[bytes].push_back(std::prev(lru.end()));
    cached += bytes;
  }
  void clear() {
    for (Entry& e : lru) std::free(e.p);
    lru.clear();
    by_size.clear();
    cached = 0;
  }
};
BlockCache& cache() {
  static BlockCache c;
  return c;
}
// Size classes: 64-byte multiples below 64 KiB, then eighths of the next power of two (at most
// 12.5 % slack), so that the tensors of videos of nearby lengths reuse each other's cached blocks.
// (With exact sizes every new video length missed the cache: a D = 256 test pass spent a third of
// its time allocating and page-faulting fresh blocks.)
size_t block_bytes(int64_t size) {
  size_t bytes = ((size_t)size * sizeof(float) + 63) / 64 * 64;
  if (bytes < ((size_t)1 << 16)) return bytes ? bytes : 64;
  size_t pow2 = (size_t)1 << 16;
  while (pow2 < bytes) pow2 <<= 1;
  size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}
}  // namespace

int64_t cached_bytes() { return (int64_t)cache().cached; }
void release_cached() { cache().clear(); }

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
  size_t bytes = block_bytes(size);
  data = cache().take(bytes);
  if (!data) throw Napi::Error::New(env, "NativeBuffer: out of memory allocating " + std::to_string(bytes) + " bytes");
  if (src) std::memcpy(data, src, (size_t)size * sizeof(float));
  else std::memset(data, 0, (size_t)size * sizeof(float));
  live_bytes += (int64_t)size * 4;
  live_count += 1;
  Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)size * 4);
}

void NativeBuffer::release(Napi::Env env) {
  if (disposed_) return;
  disposed_ = true;
  cache().give(data, block_bytes(size));
  data = nullptr;
  live_bytes -= (int64_t)size * 4;
  live_count -= 1;
  if (env != nullptr) Napi::MemoryManagement::AdjustExternalMemory(env, -(int64_t)size * 4);
}

NativeBuffer::~NativeBuffer() {
  if (!disposed_) {
    std::free(data);  // finalizer: may run at exit, after the cache is gone
    data = nullptr;
    disposed_ = true;
    live_bytes -= (int64_t)size * 4;
    live_count -= 1;
  }
}

Napi::Value NativeBuffer::Dispose(const Napi::CallbackInfo& info) {
  release(info.Env());  // idempotent
  return info.Env().Undefined();
}

// read() -> Float32Array copy of the whole buffer; read(offset, count) -> a part.
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
  if (n) std::memcpy(out.Data(), data + off, (size_t)n * sizeof(float));
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
  if (n) std::memcpy(data + off, arr.Data(), (size_t)n * sizeof(float));
  return env.Undefined();
}

Napi::Value NativeBuffer::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) throw Napi::Error::New(env, "NativeBuffer.fill: buffer was disposed");
  float v = (float)info[0].As<Napi::Number>().DoubleValue();
  for (int64_t i = 0; i < size; i++) data[i] = v;
  return env.Undefined();
}

Napi::Value NativeBuffer::GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)size); }
Napi::Value NativeBuffer::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

}  // namespace pstal
