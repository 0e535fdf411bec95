// ---------------------------------------------------------------------------------------------
// memory.cc: the CPU backend's allocator (common/memory.h): host memory, 64-byte aligned, from a
// caching allocator. NativeBuffer (common/buffer.cc) is written over it.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <string>
#include <cstdlib>
#include <list>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common/error.h"
#include "common/memory.h"

namespace pstal {

// ---- a caching allocator ---------------------------------------------------------------------
// A training step allocates the same shapes every step. Freed blocks are kept by byte size and
// handed out again (a request may take a block up to a quarter larger: videos differ in length),
// so steady-state steps make no malloc/free calls and touch no fresh pages (a fresh multi-megabyte
// block costs a page fault per 4 KiB, ~2 us each; the slack took three D = 256 training steps of
// new video lengths from 112,000 faults to 90,000). PSTAL_BUFFER_CACHE_MB caps what
// is kept (default 2048), PSTAL_BUFFER_SLACK = N sets the slack to 1/N (0: exact size classes);
// release_cached() returns it all to the system.
//
// Blocks of 64 KiB and more are mappings of their own (mmap); a large request takes the smallest
// cached block at least its size, whatever its size, else grows the largest smaller one (mremap)
// rather than mapping a fresh one: the pages it keeps are faulted in already, so only the growth
// costs faults. Attention's saved probabilities ([H, L, L], tens of MB, a size per video length)
// were most of a training step's faults: D = 256 training on new video lengths, 30,000-140,000
// faults an iteration before. The bound was 1 MiB; at D = 256 most activations are [T, 256],
// 100 KiB to 1.5 MiB, and under 1 MiB they came from malloc's heap, a size class per video length,
// which fragmented and kept growing: at 64 KiB, six training iterations' peak RSS 1,015 -> 808 MB
// and a test pass's 878 -> 723 MB, a third fewer page faults, the same time and bits.
namespace {
#if defined(__linux__)
constexpr size_t kLargeBlock = (size_t)64 << 10;
float* map_block(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<float*>(p);
}
float* remap_block(float* p, size_t from, size_t to) {
  void* q = mremap(p, from, to, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? nullptr : static_cast<float*>(q);
}
void free_block(float* p, size_t bytes) {
  if (bytes >= kLargeBlock) munmap(p, bytes);
  else std::free(p);
}
#else
constexpr size_t kLargeBlock = SIZE_MAX;
float* map_block(size_t) { return nullptr; }
float* remap_block(float*, size_t, size_t) { return nullptr; }
void free_block(float* p, size_t) { std::free(p); }
#endif
struct BlockCache {
  BlockCache() {
#if defined(__GLIBC__)
    // glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB), after
    // which blocks of a few MiB come from the heap, where videos of varying length fragment it:
    // measured at D = 2048, stage-1 training grew to 12.6 GB resident against 4.4 GB with a fixed
    // threshold (live tensors 1 GB, cache 2 GB). Tensors' large blocks are now this file's own
    // mappings; the fixed threshold still keeps the rest of the process's large mallocs (kernels'
    // scratch, V8's array buffers) out of the heap.
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
  // The smallest cached block of at least `bytes` and at most `bytes` + slack (a quarter: two size
  // classes up; any size for a large block), else a new one; block_size remembers each block's own
  // size for give().
  std::unordered_map<float*, size_t> block_size;
  size_t slack_den = [] {
    const char* e = std::getenv("PSTAL_BUFFER_SLACK");
    return e ? (size_t)std::atoll(e) : (size_t)4;
  }();
  float* take(size_t bytes) {
    // a large request may take any larger cached block (its pages are faulted in already)
    size_t most = bytes >= kLargeBlock ? SIZE_MAX : slack_den ? bytes + bytes / slack_den : bytes;
    SizeIt it = by_size.lower_bound(bytes);
    while (it != by_size.end() && it->first <= most && it->second.empty()) ++it;
    if (it != by_size.end() && it->first <= most) {
      Entry e = unlink(it);
      block_size[e.p] = e.bytes;
      return e.p;
    }
    float* p = bytes >= kLargeBlock ? grow_largest_below(bytes) : nullptr;
    if (!p && bytes >= kLargeBlock) {
      p = map_block(bytes);
      if (!p && !lru.empty()) {  // out of address space or mappings (vm.max_map_count): drop the cache, once
        clear();
        p = map_block(bytes);
      }
    } else if (!p) {
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
    }
    if (p) block_size[p] = bytes;
    return p;
  }
  using SizeIt = std::map<size_t, std::vector<std::list<Entry>::iterator>>::iterator;
  // Takes the newest cached block of the size `it` points at out of the cache.
  Entry unlink(SizeIt it) {
    auto entry = it->second.back();
    it->second.pop_back();
    Entry e = *entry;
    cached -= e.bytes;
    lru.erase(entry);
    return e;
  }
  // The largest cached large block smaller than `bytes`, grown to it (only the growth is fresh
  // pages); null when there is none or mremap fails. Blocks are never shrunk: videos alternate in
  // length, and a block shrunk for a short one is grown again for the next long one.
  float* grow_largest_below(size_t bytes) {
    for (SizeIt it = by_size.lower_bound(bytes); it != by_size.begin();) {
      --it;
      if (it->first < kLargeBlock) return nullptr;
      if (it->second.empty()) continue;
      Entry e = unlink(it);
      float* q = remap_block(e.p, e.bytes, bytes);
      if (!q) free_block(e.p, e.bytes);
      return q;
    }
    return nullptr;
  }
  void evict_oldest() {
    auto& same = by_size[lru.front().bytes];
    same.erase(std::find(same.begin(), same.end(), lru.begin()));
    free_block(lru.front().p, lru.front().bytes);
    cached -= lru.front().bytes;
    lru.pop_front();
  }
  void give(float* p) {
    auto b = block_size.find(p);
    size_t bytes = b->second;
    block_size.erase(b);
    if (bytes > limit) {
      free_block(p, bytes);
      return;
    }
    while (cached + bytes > limit) evict_oldest();
    lru.push_back({bytes, p});
    by_size[bytes].push_back(std::prev(lru.end()));
    cached += bytes;
  }
  void clear() {
    for (Entry& e : lru) free_block(e.p, e.bytes);
    lru.clear();
    by_size.clear();
    cached = 0;
  }
};
// Never destroyed: finalizers may run at exit, after static destructors.
BlockCache& cache() {
  static BlockCache* c = new BlockCache();
  return *c;
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

namespace mem {

const char* backend_name() { return "cpu"; }
void init() {}

// One cache for the process: Node worker threads (each its own isolate) share it, hence the lock.
std::mutex cache_mutex;

float* alloc(int64_t n) {
  size_t bytes = block_bytes(n);
  float* p;
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    p = cache().take(bytes);
  }
  if (!p) throw OpError("out of memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void free(float* p, int64_t n) {
  (void)n;  // the cache knows the block's size (it may be larger than n's size class)
  if (!p) return;
  std::lock_guard<std::mutex> lock(cache_mutex);
  cache().give(p);
}

void copy_in(float* dst, const float* host, int64_t n) {
  if (n) std::memcpy(dst, host, (size_t)n * sizeof(float));
}

void copy_out(float* host, const float* src, int64_t n) {
  if (n) std::memcpy(host, src, (size_t)n * sizeof(float));
}

void fill(float* p, int64_t n, float v) {
  if (v == 0.f && !std::signbit(v)) {
    if (n) std::memset(p, 0, (size_t)n * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < n; i++) p[i] = v;
}

int64_t cached_bytes() {
  std::lock_guard<std::mutex> lock(cache_mutex);
  return (int64_t)cache().cached;
}
void release_cached() {
  std::lock_guard<std::mutex> lock(cache_mutex);
  cache().clear();
}

// Nothing is kept per thread: host blocks can be reused by any thread as soon as they are freed.
void thread_exit() {}

}  // namespace mem
}  // namespace pstal
