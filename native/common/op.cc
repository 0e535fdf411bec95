// ---------------------------------------------------------------------------------------------
// op.cc: the op registry and the checked argument accessors (see op.h).
// ---------------------------------------------------------------------------------------------
#include "common/op.h"

#include <cmath>
#include <sstream>
#include <utility>

namespace pstal {

static std::vector<std::pair<const char*, OpFn>>& registry() {
  static std::vector<std::pair<const char*, OpFn>> r;
  return r;
}

Registrar::Registrar(const char* name, OpFn fn) { registry().emplace_back(name, fn); }

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); i++) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

static std::string arg_name(size_t i, const char* name) {
  return std::string("argument ") + std::to_string(i) + " (" + name + ")";
}

float* Args::buf(size_t i, int64_t need, const char* name) const {
  if (i >= info.Length() || !info[i].IsObject()) fail(arg_name(i, name) + " must be a NativeBuffer");
  Napi::Object o = info[i].As<Napi::Object>();
  if (!NativeBuffer::Is(info.Env(), o)) fail(arg_name(i, name) + " must be a NativeBuffer");
  NativeBuffer* b = NativeBuffer::Unwrap(o);
  if (b->disposed()) fail(arg_name(i, name) + " was disposed (use after free)");
  if (need >= 0 && b->size < need)
    fail(arg_name(i, name) + " holds " + std::to_string(b->size) + " values but the op needs " + std::to_string(need));
  return b->data;
}

int64_t Args::buf_size(size_t i, const char* name) const {
  buf(i, -1, name);
  return NativeBuffer::Unwrap(info[i].As<Napi::Object>())->size;
}

int64_t Args::i64(size_t i, const char* name) const {
  if (i >= info.Length() || !info[i].IsNumber()) fail(arg_name(i, name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v != std::floor(v)) fail(arg_name(i, name) + " must be an integer, received " + std::to_string(v));
  return (int64_t)v;
}

double Args::f64(size_t i, const char* name) const {
  if (i >= info.Length() || !info[i].IsNumber()) fail(arg_name(i, name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

bool Args::flag(size_t i, const char* name) const {
  if (i >= info.Length() || !info[i].IsBoolean()) fail(arg_name(i, name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string Args::str(size_t i, const char* name) const {
  if (i >= info.Length() || !info[i].IsString()) fail(arg_name(i, name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

float* Args::f32(size_t i, const char* name, int64_t* len) const {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    fail(arg_name(i, name) + " must be a Float32Array");
  auto a = info[i].As<Napi::Float32Array>();
  *len = (int64_t)a.ElementLength();
  return a.Data();
}

int32_t* Args::i32(size_t i, const char* name, int64_t* len) const {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    fail(arg_name(i, name) + " must be an Int32Array");
  auto a = info[i].As<Napi::Int32Array>();
  *len = (int64_t)a.ElementLength();
  return a.Data();
}

std::vector<int64_t> Args::ints(size_t i, const char* name) const {
  if (i >= info.Length() || !info[i].IsArray()) fail(arg_name(i, name) + " must be an array of integers");
  auto a = info[i].As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) fail(arg_name(i, name) + " must be an array of integers");
    out[k] = v.As<Napi::Number>().Int64Value();
  }
  return out;
}

Napi::Object to_js(Napi::Env env, const Info& info) {
  Napi::Object o = Napi::Object::New(env);
  for (const Info::Field& f : info.fields) {
    if (f.kind == Info::STR) o.Set(f.key, Napi::String::New(env, f.str));
    else if (f.kind == Info::NUM) o.Set(f.key, Napi::Number::New(env, f.num));
    else o.Set(f.key, Napi::Boolean::New(env, f.num != 0));
  }
  return o;
}

void install_ops(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : registry()) {
    std::string op_name = name;
    OpFn f = fn;
    exports.Set(name, Napi::Function::New(env, [op_name, f](const Napi::CallbackInfo& info) -> Napi::Value {
      Args args(info, op_name.c_str());
      try {
        return f(args);
      } catch (const Napi::Error&) {
        throw;
      } catch (const std::exception& e) {
        throw Napi::Error::New(info.Env(), op_name + ": " + e.what());
      }
    }, name));
  }
}

}  // namespace pstal
