// ---------------------------------------------------------------------------------------------
// buffer.cc: NativeBuffer's JS methods, once for both addons, over the backend's allocator
// (common/memory.h). Allocator errors (out of memory, a CUDA error) become JS Errors naming the
// method; nothing here knows whether `data` is host or device memory.
// ---------------------------------------------------------------------------------------------
#include "common/buffer.h"

#include <cmath>
#include <string>

#include "common/memory.h"

namespace pstal {

std::atomic<int64_t> NativeBuffer::live_bytes{0};
std::atomic<int64_t> NativeBuffer::live_count{0};
std::atomic<int64_t> NativeBuffer::created_count{0};

namespace {

// The bytes held by this thread's buffers: a buffer lives and dies in the isolate (the thread)
// that made it, so this is what that isolate's V8 is told (report_live). The process-wide
// live_bytes told every worker's isolate of the others' memory too: collections for nothing.
thread_local int64_t isolate_live_bytes = 0;
// What this isolate's V8 has been told (report_live).
thread_local int64_t isolate_reported_bytes = 0;

// A buffer's storage taken (+1) or given back (-1), in the process's and this isolate's counts.
void count_storage(int64_t bytes, int sign) {
  NativeBuffer::live_bytes += sign * bytes;
  NativeBuffer::live_count += sign;
  isolate_live_bytes += sign * bytes;
}

// Runs fn, turning an allocator exception into a JS Error "<what>: <cause>".
template <typename F>
void guarded(Napi::Env env, const char* what, F&& fn) {
  try {
    fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(what) + ": " + e.what());
  }
}

}  // namespace

Napi::Function NativeBuffer::Define(Napi::Env env) {
  Napi::Function fn = DefineClass(env, "NativeBuffer",
                                  {InstanceMethod("dispose", &NativeBuffer::Dispose),
                                   InstanceMethod("read", &NativeBuffer::Read),
                                   InstanceMethod("write", &NativeBuffer::Write),
                                   InstanceMethod("fill", &NativeBuffer::Fill),
                                   InstanceMethod("reset", &NativeBuffer::Reset),
                                   InstanceAccessor("size", &NativeBuffer::GetSize, nullptr),
                                   InstanceAccessor("disposed", &NativeBuffer::GetDisposed, nullptr)});
  // the class of this env (a static would be the last isolate's: a buffer made in one worker
  // thread would then fail the InstanceOf check of ops in another)
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(fn)));
  return fn;
}

bool NativeBuffer::Is(Napi::Env env, const Napi::Object& o) {
  Napi::FunctionReference* ctor = env.GetInstanceData<Napi::FunctionReference>();
  return ctor && o.InstanceOf(ctor->Value());
}

// new NativeBuffer(size) -> zero-filled; new NativeBuffer(size, false) -> uninitialised (an op's
// output that its kernel overwrites whole: no fill pass); new NativeBuffer(Float32Array) -> copy.
NativeBuffer::NativeBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeBuffer>(info) {
  disposed_ = true;  // until acquire() succeeds, so the destructor does not count it
  acquire(info, "NativeBuffer");
  created_count += 1;
}

// Takes fresh storage for a disposed buffer: info[0] is a size (zero-filled unless info[1] is false) or a Float32Array (copied).
void NativeBuffer::acquire(const Napi::CallbackInfo& info, const char* what) {
  Napi::Env env = info.Env();
  const float* src = nullptr;
  int64_t n = 0;
  bool zero = true;
  if (info.Length() >= 1 && info[0].IsNumber()) {
    if (info.Length() >= 2 && info[1].IsBoolean()) zero = info[1].As<Napi::Boolean>().Value();
    double v = info[0].As<Napi::Number>().DoubleValue();
    if (!(v >= 0) || v != (double)(int64_t)v || v > (double)(1LL << 40)) {
      throw Napi::Error::New(env, std::string(what) + ": size must be a non-negative integer, received " +
                                      std::to_string(v));
    }
    n = (int64_t)v;
  } else if (info.Length() >= 1 && info[0].IsTypedArray() &&
             info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    auto arr = info[0].As<Napi::Float32Array>();
    n = (int64_t)arr.ElementLength();
    src = arr.Data();
  } else {
    throw Napi::TypeError::New(env, std::string(what) + ": expected a size or a Float32Array");
  }
  float* p = nullptr;
  try {
    p = mem::alloc(n);
    if (src) mem::copy_in(p, src, n);
    else if (zero) mem::fill(p, n, 0.f);
  } catch (const std::exception& e) {
    if (p) mem::free(p, n);
    throw Napi::Error::New(env, std::string(what) + ": " + e.what());
  }
  data = p;
  size = n;
  disposed_ = false;
  count_storage(size * 4, +1);
  report_live(env);
}

// V8 is told how much native memory its wrappers hold, so that it collects (and finalizes)
// leaked wrappers when that grows. But V8 starts a full mark-compact whenever the reported amount
// rises 64 MB above its level at the last collection, and a training step's buffers rise and fall
// by hundreds of MB per video at D = 2048: reported buffer by buffer, that was a mark-compact
// every ~90 ms on the CPU (94 in two 4-video steps) and ~0.4 s of a 0.5 s CUDA iteration, where
// the GPU's own work took ~0.1 s. So V8 is told the peak: a rise of live bytes above it is
// reported at once (memory held past the peak, a leak, still brings a collection); falls are not,
// since any fall reported is a rise to report again when the next video allocates (one collection
// per video). release_cached_buffers() (`exact`) tells V8 the live bytes as they are.
// thread_local: each worker thread is its own isolate, told of its own buffers only.
int64_t NativeBuffer::reported_bytes() { return isolate_reported_bytes; }

void NativeBuffer::report_live(Napi::Env env, bool exact) {
  const int64_t live = isolate_live_bytes;
  const int64_t delta = live > isolate_reported_bytes || exact ? live - isolate_reported_bytes : 0;
  if (delta == 0) return;
  Napi::MemoryManagement::AdjustExternalMemory(env, delta);
  isolate_reported_bytes += delta;
}

// reset(size [, zero] | Float32Array): a disposed buffer takes new storage, as the constructor would give.
// Lets tensors reuse their wrappers (lib/tensor/tensor.ts): a new wrapper per tensor costs a
// finalizer, which Node runs only when the event loop turns, so a caller that loops without
// yielding (detect() over many videos) accumulated every tensor's wrapper until it did.
Napi::Value NativeBuffer::Reset(const Napi::CallbackInfo& info) {
  if (!disposed_) throw Napi::Error::New(info.Env(), "NativeBuffer.reset: the buffer is in use; only a disposed buffer can be reset");
  acquire(info, "NativeBuffer.reset");
  return info.Env().Undefined();
}

void NativeBuffer::release(Napi::Env env) {
  if (disposed_) return;
  disposed_ = true;
  mem::free(data, size);
  data = nullptr;
  count_storage(size * 4, -1);
  if (env != nullptr) report_live(env);
}

NativeBuffer::~NativeBuffer() {
  if (!disposed_) {
    // Finalizer: back to the cache, which outlives every buffer (never destroyed; see memory.*).
    mem::free(data, size);
    data = nullptr;
    disposed_ = true;
    count_storage(size * 4, -1);
  }
}

Napi::Value NativeBuffer::Dispose(const Napi::CallbackInfo& info) {
  release(info.Env());  // idempotent
  return info.Env().Undefined();
}

// read() -> Float32Array copy of the whole buffer; read(offset, count) -> a part. On the CUDA
// backend the copy waits for every op queued before it.
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
  guarded(env, "NativeBuffer.read", [&] { mem::copy_out(out.Data(), data + off, n); });
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
  guarded(env, "NativeBuffer.write", [&] { mem::copy_in(data + off, arr.Data(), n); });
  return env.Undefined();
}

Napi::Value NativeBuffer::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) throw Napi::Error::New(env, "NativeBuffer.fill: buffer was disposed");
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "NativeBuffer.fill: expected a number");
  float v = (float)info[0].As<Napi::Number>().DoubleValue();
  guarded(env, "NativeBuffer.fill", [&] { mem::fill(data, size, v); });
  return env.Undefined();
}

Napi::Value NativeBuffer::GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)size); }
Napi::Value NativeBuffer::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

}  // namespace pstal
