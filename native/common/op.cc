// ---------------------------------------------------------------------------------------------
// op.cc: the op registry and the checked argument accessors (see op.h).
// ---------------------------------------------------------------------------------------------
#include "common/op.h"

#include "common/counters.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <utility>

namespace pstal {

static std::vector<std::pair<const char*, OpFn>>& registry() {
  static std::vector<std::pair<const char*, OpFn>> r;
  return r;
}

Registrar::Registrar(const char* name, OpFn fn) { registry().emplace_back(name, fn); }

// ---- the launch counter (common/counters.h) -----------------------------------------------------

namespace {
struct OpCount {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> launches{0};
};
// One slot per registered op (the registry is complete before any addon initialises), plus one
// for launches outside any op (a buffer's fill or copy on the device).
OpCount* op_counts() {
  static std::unique_ptr<OpCount[]> counts(new OpCount[registry().size() + 1]);
  return counts.get();
}
thread_local OpCount* running_op = nullptr;

// Sets the op whose launches count on this thread for the duration of one call.
struct RunningOp {
  OpCount* prev;
  explicit RunningOp(OpCount* c) : prev(running_op) {
    running_op = c;
    c->calls.fetch_add(1, std::memory_order_relaxed);
  }
  ~RunningOp() { running_op = prev; }
};
}  // namespace

void count_launch() {
  OpCount* c = running_op ? running_op : &op_counts()[registry().size()];
  c->launches.fetch_add(1, std::memory_order_relaxed);
}

// call_counts() -> { calls: {op: n}, launches: {op: n}, totalCalls, totalLaunches }: the ops called
// (and, on CUDA, those that launched device work) since the last reset_call_counts(); the two
// counter ops themselves are not counted.
PSTAL_OP(call_counts) {
  Napi::Env env = args.env();
  Napi::Object calls = Napi::Object::New(env), launches = Napi::Object::New(env);
  double total_calls = 0, total_launches = 0;
  OpCount* c = op_counts();
  for (size_t i = 0; i <= registry().size(); i++) {
    const char* name = i < registry().size() ? registry()[i].first : "(outside ops)";
    uint64_t n = c[i].calls.load(std::memory_order_relaxed), l = c[i].launches.load(std::memory_order_relaxed);
    if (n) calls.Set(name, Napi::Number::New(env, (double)n)), total_calls += (double)n;
    if (l) launches.Set(name, Napi::Number::New(env, (double)l)), total_launches += (double)l;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("calls", calls), o.Set("launches", launches);
  o.Set("totalCalls", Napi::Number::New(env, total_calls)), o.Set("totalLaunches", Napi::Number::New(env, total_launches));
  return o;
}

PSTAL_OP(reset_call_counts) {
  OpCount* c = op_counts();
  for (size_t i = 0; i <= registry().size(); i++) c[i].calls.store(0, std::memory_order_relaxed), c[i].launches.store(0, std::memory_order_relaxed);
  return args.env().Undefined();
}

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

float Args::probability(size_t i, const char* name) const {
  double p = f64(i, name);
  char shown[32];
  std::snprintf(shown, sizeof shown, "%.17g", p);  // every digit: 1 - 2^-26 is not "1.000000"
  if (!(p >= 0 && p < 1)) fail(std::string(name) + " must be in [0, 1), received " + shown);
  if (!((float)p < 1.f)) fail(std::string(name) + " = " + shown + " rounds to 1 in float32 (it must be below 1 - 2^-25)");
  return (float)p;
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
  OpCount* counts = op_counts();
  for (size_t i = 0; i < registry().size(); i++) {
    const auto& [name, fn] = registry()[i];
    std::string op_name = name;
    OpFn f = fn;
    // the counter's own ops are not counted (a reading would change what it reads)
    OpCount* count = op_name == "call_counts" || op_name == "reset_call_counts" ? nullptr : &counts[i];
    exports.Set(name, Napi::Function::New(env, [op_name, f, count](const Napi::CallbackInfo& info) -> Napi::Value {
      Args args(info, op_name.c_str());
      try {
        if (!count) return f(args);
        RunningOp running(count);
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
