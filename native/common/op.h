// ---------------------------------------------------------------------------------------------
// op.h: how a native op is declared, how it reads its arguments, and how it fails.
//
// Every op is a function `Napi::Value op(Args&)` registered by name with PSTAL_OP, once for both
// addons, in native/ops/<family>.cc: it reads and checks the JS arguments into the plain argument
// struct of native/ops/<family>.h and calls the backend's Napi-free kernel of that name
// (native/cpu/<family>.cc or native/cuda/<family>.cu, whichever addon is being built). Its JS
// arguments are native buffers (NativeBuffer handles), numbers, booleans and typed arrays; the
// Args accessors check each one and throw OpError, which the registry turns into a JS Error whose
// message starts with the op's name. No op may crash the process on bad input: every buffer is
// checked against the element count the op will touch before any kernel runs.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <napi.h>

#include "common/buffer.h"
#include "common/error.h"
#include "common/info.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pstal {

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
  // A dropout probability: in [0, 1) as the float32 the kernels use. A p that rounds to 1.0f
  // (p >= 1 - 2^-25) would keep nothing and scale by 1 / 0 (NaN on the CPU, 0 on CUDA): refused.
  float probability(size_t i, const char* name) const;
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

// A kernel's record (common/info.h) as a JS object.
Napi::Object to_js(Napi::Env env, const Info& info);

}  // namespace pstal
