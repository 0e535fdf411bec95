// ---------------------------------------------------------------------------------------------
// addon.cu: the CUDA addon's entry point (pstal_cuda.node). Exports NativeBuffer (buffer.cu),
// every op registered with PSTAL_OP in native/cuda/*.cu and native/common/{op,parallel}.cc under
// the CPU addon's names, `backend: 'cuda'`, and what only a device has: device_info, set_tf32,
// synchronize.
//
// Loading fails with a JS Error when no CUDA device can be used (no driver, no GPU), so that
// lib/runtime/backend.ts reports device 'cuda' as unavailable instead of failing on the first op.
// ---------------------------------------------------------------------------------------------
#include <climits>

#include "cuda/common.cuh"
#include "cuda/gemm.h"

namespace pstal {

// ---- the ops of native/common/addon.cc -------------------------------------------------------

PSTAL_OP(memory_stats) {
  Napi::Object o = Napi::Object::New(args.env());
  o.Set("liveBytes", Napi::Number::New(args.env(), (double)NativeBuffer::live_bytes));
  o.Set("liveBuffers", Napi::Number::New(args.env(), (double)NativeBuffer::live_count));
  o.Set("cachedBytes", Napi::Number::New(args.env(), (double)cached_bytes()));
  return o;
}

// Returns every cached free block to the device.
PSTAL_OP(release_cached_buffers) {
  release_cached();
  return args.env().Undefined();
}

namespace {

// Smallest index of a NaN/Inf: each thread's first hit is its smallest (grid-stride order), a
// warp takes the minimum, one atomicMin per warp.
__global__ void first_nonfinite_kernel(const float* __restrict__ x, int64_t n, unsigned long long* first) {
  unsigned long long best = ULLONG_MAX;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    if (!isfinite(x[i])) {
      best = (unsigned long long)i;
      break;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    unsigned long long other = __shfl_down_sync(0xffffffffu, best, o);
    best = other < best ? other : best;
  }
  if ((threadIdx.x & 31) == 0 && best != ULLONG_MAX) atomicMin(first, best);
}

}  // namespace

// Index of the first NaN or Inf in a buffer, or -1: the autograd layer's anomaly check.
PSTAL_OP(first_nonfinite) {
  int64_t n = args.buf_size(0, "x");
  const float* x = args.buf(0, n, "x");
  if (n == 0) return Napi::Number::New(args.env(), -1);
  cuda::DeviceScratch first(sizeof(unsigned long long));
  PSTAL_CUDA_CHECK(cudaMemsetAsync(first.p, 0xff, sizeof(unsigned long long), cuda::stream()));  // ULLONG_MAX
  first_nonfinite_kernel<<<cuda::blocks_for(n), 256, 0, cuda::stream()>>>(x, n, first.as<unsigned long long>());
  PSTAL_CUDA_LAUNCH();
  unsigned long long host = 0;
  cuda::download(&host, first.as<unsigned long long>(), 1);
  return Napi::Number::New(args.env(), host == ULLONG_MAX ? -1.0 : (double)host);
}

// Copies n floats from src[src_off..] to dst[dst_off..] (both native buffers), on the stream.
PSTAL_OP(copy) {
  int64_t n = args.i64(4, "n"), so = args.i64(1, "src_offset"), doff = args.i64(3, "dst_offset");
  PSTAL_CHECK(args, n >= 0 && so >= 0 && doff >= 0, "offsets and count must be non-negative");
  const float* s = args.buf(0, so + n, "src");
  float* d = args.buf(2, doff + n, "dst");
  if (n)
    PSTAL_CUDA_CHECK(cudaMemcpyAsync(d + doff, s + so, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice, cuda::stream()));
  return args.env().Undefined();
}

// ---- device-only ops -------------------------------------------------------------------------

// { name, computeCapability: '9.0', major, minor, multiprocessors, totalBytes, freeBytes,
//   device, driverVersion, runtimeVersion }
PSTAL_OP(device_info) {
  int dev = 0, driver = 0, runtime = 0;
  PSTAL_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  PSTAL_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  size_t free_b = 0, total_b = 0;
  PSTAL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  PSTAL_CUDA_CHECK(cudaDriverGetVersion(&driver));
  PSTAL_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  Napi::Env env = args.env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, prop.name));
  o.Set("computeCapability", Napi::String::New(env, std::to_string(prop.major) + "." + std::to_string(prop.minor)));
  o.Set("major", Napi::Number::New(env, prop.major));
  o.Set("minor", Napi::Number::New(env, prop.minor));
  o.Set("multiprocessors", Napi::Number::New(env, prop.multiProcessorCount));
  o.Set("totalBytes", Napi::Number::New(env, (double)total_b));
  o.Set("freeBytes", Napi::Number::New(env, (double)free_b));
  o.Set("device", Napi::Number::New(env, dev));
  o.Set("driverVersion", Napi::Number::New(env, driver));
  o.Set("runtimeVersion", Napi::Number::New(env, runtime));
  return o;
}

// set_tf32(flag): TF32 tensor-core GEMMs (faster, ~1e-3 relative error); off by default.
PSTAL_OP(set_tf32) {
  cuda::set_tf32(args.flag(0, "on"));
  return args.env().Undefined();
}

// Waits for every queued op: benchmarks call it before reading the clock.
PSTAL_OP(synchronize) {
  PSTAL_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  return args.env().Undefined();
}

}  // namespace pstal

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw Napi::Error::New(env, std::string("no usable CUDA device (cudaGetDeviceCount: ") +
                                    (e == cudaSuccess ? "0 devices" : std::string(cudaGetErrorName(e)) + ": " +
                                                                          cudaGetErrorString(e)) +
                                    ")");
  }
  exports.Set("NativeBuffer", pstal::NativeBuffer::Define(env));
  pstal::install_ops(env, exports);
  exports.Set("backend", Napi::String::New(env, "cuda"));
  return exports;
}

NODE_API_MODULE(pstal_cuda, Init)
