// ---------------------------------------------------------------------------------------------
// op.h: how a native op is declared, how it reads its arguments, and how it fails.
//
// Every op is a function `Napi::Value op(Args&)` registered by name with PSTAL_OP. Its JS
// arguments are native buffers (NativeBuffer handles), numbers, booleans and typed arrays; the
// Args accessors check each one and throw OpError, which the registry turns into a JS Error whose
// message starts with the op's name. No op may crash the process on bad input: every buffer is
// checked against the element count the op will touch before any kernel runs.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <napi.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pstal {

// An argument or shape error; the registry prefixes the op name.
struct OpError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// float32 storage in native memory, 64-byte aligned, freed by dispose() or, as a fallback, by
// the garbage collector. Using a disposed buffer is an OpError, never a use-after-free.
class NativeBuffer : public Napi::ObjectWrap<NativeBuffer> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeBuffer(const Napi::CallbackInfo& info);
  ~NativeBuffer() override;

  float* data = nullptr;
  int64_t size = 0;
  bool disposed() const { return disposed_; }

  static Napi::FunctionReference* constructor;
  static int64_t live_bytes;  // across all buffers: the memory test reads it
  static int64_t live_count;

 private:
  bool disposed_ = false;
  void release(Napi::Env env);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
};

// The buffer cache (buffer.cc): bytes held for reuse, and a way to give them back.
int64_t cached_bytes();
void release_cached();

// Checked access to an op's arguments.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op) : info(info), op(op) {}
  const Napi::CallbackInfo& info;
  const char* op;
  Napi::Env env() const { return info.Env(); }
  size_t count() const { return info.Length(); }

  // A live native buffer holding at least `need` floats (need < 0: any size).
  float* buf(size_t i, int64_t need, const char* name) const;
  int64_t buf_size(size_t i, const char* name) const;
  int64_t i64(size_t i, const char* name) const;
  double f64(size_t i, const char* name) const;
  bool flag(size_t i, const char* name) const;
  std::string str(size_t i, const char* name) const;
  // Typed arrays passed from JS (valid for the duration of the call).
  float* f32(size_t i, const char* name, int64_t* len) const;
  int32_t* i32(size_t i, const char* name, int64_t* len) const;
  std::vector<int64_t> ints(size_t i, const char* name) const;  // JS array of integers
  bool has(size_t i) const { return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull(); }
  [[noreturn]] void fail(const std::string& msg) const { throw OpError(msg); }
};

using OpFn = Napi::Value (*)(Args&);
struct Registrar {
  Registrar(const char* name, OpFn fn);
};
void install_ops(Napi::Env env, Napi::Object exports);

// Throws OpError unless cond; message gets the op name prepended by the registry.
#define PSTAL_CHECK(args, cond, msg)             \
  do {                                           \
    if (!(cond)) (args).fail(std::string(msg));  \
  } while (0)

#define PSTAL_OP(name)                                            \
  static Napi::Value pstal_op_##name(pstal::Args& args);          \
  static pstal::Registrar pstal_reg_##name(#name, pstal_op_##name); \
  static Napi::Value pstal_op_##name(pstal::Args& args)

// Shapes as text for error messages: [2, 3, 4]
std::string shape_str(const std::vector<int64_t>& s);

}  // namespace pstal
