// ---------------------------------------------------------------------------------------------
// addon.cc: the entry point of both addons (pstal.node, pstal_cuda.node): the backend's start-up
// check (common/memory.h: the CUDA addon refuses to load without a usable GPU), NativeBuffer,
// every op registered with PSTAL_OP (native/ops/*.cc, common/*.cc), the backend's name, the
// buffer statistics both backends keep, and the hook that lets the backend release a thread's
// state when its environment ends (mem::thread_exit).
// ---------------------------------------------------------------------------------------------
#include <cstdlib>  // defines __GLIBC__ where glibc is the C library
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common/memory.h"
#include "common/op.h"
#include "common/parallel.h"

namespace pstal {

PSTAL_OP(memory_stats) {
  Info i;
  i.num("liveBytes", (double)NativeBuffer::live_bytes.load()).num("liveBuffers", (double)NativeBuffer::live_count.load());
  i.num("createdBuffers", (double)NativeBuffer::created_count.load());
  i.num("cachedBytes", (double)mem::cached_bytes());
  // this thread's isolate only: the bytes V8 has been told its buffers hold (their peak)
  i.num("reportedBytes", (double)NativeBuffer::reported_bytes());
  // the C heap under everything (glibc): bytes in use by malloc (tensors' cached blocks, kernels'
  // scratch, V8's array buffers) and the main arena's size, so a test can tell growth of the C
  // heap from growth of the tensors; -1 where the C library does not say
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  struct mallinfo2 mi = mallinfo2();
  i.num("mallocInUseBytes", (double)(mi.uordblks + mi.hblkhd)).num("mallocArenaBytes", (double)mi.arena);
#else
  i.num("mallocInUseBytes", -1.0).num("mallocArenaBytes", -1.0);
#endif
  return to_js(args.env(), i);
}

// Returns every cached free block to the system (or the device), and tells V8 the live bytes as
// they are now (it is otherwise told their peak: NativeBuffer::report_live).
PSTAL_OP(release_cached_buffers) {
  mem::release_cached();
  NativeBuffer::report_live(args.env(), true);
  return args.env().Undefined();
}

// ---- runtime settings: the host thread pool (common/parallel.h) ----------------------------------

PSTAL_OP(get_num_threads) { return Napi::Number::New(args.env(), num_threads()); }

PSTAL_OP(set_num_threads) {
  int64_t n = args.i64(0, "threads");
  PSTAL_CHECK(args, n >= 1 && n <= 1024, "threads must be in [1, 1024], received " + std::to_string(n));
  set_num_threads((int)n);
  return args.env().Undefined();
}

// ---- the end of a thread's environment -----------------------------------------------------------

namespace {

// Whether this thread's environment has the cleanup hook: the addon may be initialised twice in
// one environment (loaded again), and the same hook registered twice in one environment aborts.
// One environment a thread (the main thread's, or a worker thread's).
thread_local bool exit_hook_added = false;

void on_env_exit(void*) {
  exit_hook_added = false;
  try {
    mem::thread_exit();
  } catch (...) {
    // (a C callback: nothing may escape; thread_exit does not throw)
  }
}

}  // namespace

// Registers mem::thread_exit to run on this thread when its environment goes away (a worker thread
// ends, or the main thread's at a normal exit; process.exit() may skip the main thread's): see
// common/memory.h. Hooks run before static destructors, while the CUDA runtime is still loaded.
void add_exit_hook(Napi::Env env) {
  if (exit_hook_added) return;
  if (napi_add_env_cleanup_hook(env, on_env_exit, nullptr) == napi_ok) exit_hook_added = true;
}

}  // namespace pstal

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  try {
    pstal::mem::init();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  pstal::add_exit_hook(env);
  exports.Set("NativeBuffer", pstal::NativeBuffer::Define(env));
  pstal::install_ops(env, exports);
  exports.Set("backend", Napi::String::New(env, pstal::mem::backend_name()));
  return exports;
}

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
