// ---------------------------------------------------------------------------------------------
// buffer.h: NativeBuffer, the float32 storage behind every tensor, for both addons: the JS class
// (common/buffer.cc) is written once over the backend's allocator (common/memory.h), so `data` is
// a host pointer in the CPU addon and a device pointer in the CUDA addon.
//
// Released deterministically by dispose() (TypeScript scopes call it when a step ends); the
// finalizer is only a fallback. Using a disposed buffer is an error, never a use-after-free.
// reset() gives a disposed buffer new storage (tensors reuse their wrappers: see buffer.cc).
// live_bytes/live_count let tests prove memory stays flat.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>

namespace pstal {

class NativeBuffer : public Napi::ObjectWrap<NativeBuffer> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeBuffer(const Napi::CallbackInfo& info);
  ~NativeBuffer() override;

  float* data = nullptr;
  int64_t size = 0;
  bool disposed() const { return disposed_; }

  // Is `o` a NativeBuffer of this env's addon instance? (The class is per env: Node worker
  // threads each load the addon into their own isolate.)
  static bool Is(Napi::Env env, const Napi::Object& o);
  // Across all buffers of the process (every worker thread's): the memory test reads them.
  static std::atomic<int64_t> live_bytes;
  static std::atomic<int64_t> live_count;
  static std::atomic<int64_t> created_count;  // wrappers ever constructed (each one costs a finalizer)
  // Tells this isolate's V8 the peak of the bytes its own buffers hold (or, exact, those bytes as
  // they are): see buffer.cc.
  static void report_live(Napi::Env env, bool exact = false);
  // What report_live has told the calling thread's isolate so far.
  static int64_t reported_bytes();

 private:
  bool disposed_ = false;
  void release(Napi::Env env);
  void acquire(const Napi::CallbackInfo& info, const char* what);
  Napi::Value Reset(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
};

}  // namespace pstal
