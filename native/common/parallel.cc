// ---------------------------------------------------------------------------------------------
// parallel.cc: the thread pool behind parallel_for (see parallel.h).
// ---------------------------------------------------------------------------------------------
#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace pstal {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// A worker that has finished a job spins (checking an atomic, no lock) for a while before it
// sleeps, and so does the caller waiting for the workers: a training step calls thousands of small
// ops a few microseconds apart, and waking a sleeping thread through the kernel costs more than
// many of them take (measured at D = 256, 2 threads: axpy slower on two threads than on one).
// PSTAL_SPIN_US sets the spell (default 200 us; 0: sleep at once).
int64_t spin_ns() {
  static const int64_t ns = [] {
    const char* e = std::getenv("PSTAL_SPIN_US");
    return (e ? std::max<int64_t>(0, std::atoll(e)) : 200) * 1000;
  }();
  return ns;
}

// Spins until done() or the spell is over; true when done() became true. After the first few
// microseconds each check yields the core (sched_yield): when more threads are runnable than there
// are cores (more threads than cores asked for, or other processes at work) the spinner hands its
// core to one that has work instead of holding it for the whole spell (measured: 4 threads on this
// 2-core machine, 1.25 s a D = 256 iteration spinning without yielding against 0.64 s sleeping).
template <typename Done>
bool spin_until(Done done) {
  const int64_t budget = spin_ns();
  if (budget == 0) return done();
  for (int i = 0; i < 256; i++) {  // ~2-5 us of pause loops: the common gap between two small ops
    if (done()) return true;
    cpu_relax();
  }
  auto t0 = std::chrono::steady_clock::now();
  while (!done()) {
    std::this_thread::yield();
    if (std::chrono::steady_clock::now() - t0 > std::chrono::nanoseconds(budget)) return done();
  }
  return true;
}

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return nthreads_.load(std::memory_order_relaxed); }

  void resize(int n) {
    if (n < 1) n = 1;
    std::lock_guard<std::mutex> turn(run_mutex_);  // not under another thread's job
    stop();
    nthreads_ = n;
    uint64_t gen;
    {
      std::unique_lock<std::mutex> lk(m_);
      quit_ = false;
      gen = generation_.load();
    }
    // New workers start at the current generation: starting from 0 they would see a finished
    // job as new and call its (already cleared) function.
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, gen] { loop(i, gen); });
  }

  // Runs fn(i, tasks) for i in [0, tasks) with the caller as task 0. One job at a time: callers on
  // different threads (Node worker threads share the pool) take turns.
  void run(int tasks, const std::function<void(int, int)>& fn) {
    if (tasks <= 1 || in_parallel_) {
      for (int i = 0; i < tasks; i++) fn(i, tasks);
      return;
    }
    std::lock_guard<std::mutex> turn(run_mutex_);
    // `tasks` was sized from num_threads() before the lock: another thread's set_num_threads may
    // have shrunk the pool since, and a task without a worker would never finish (the wait below
    // would hang). Under the lock the size is settled; a job too large for it runs on the caller.
    if (tasks > nthreads_.load(std::memory_order_relaxed)) {
      in_parallel_ = true;
      for (int i = 0; i < tasks; i++) fn(i, tasks);
      in_parallel_ = false;
      return;
    }
    {
      std::unique_lock<std::mutex> lk(m_);
      job_ = &fn;
      tasks_ = tasks;
      pending_.store(tasks - 1);
      generation_.fetch_add(1, std::memory_order_release);  // publishes job_ and tasks_ to spinners
    }
    cv_.notify_all();
    in_parallel_ = true;
    fn(0, tasks);
    in_parallel_ = false;
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, [this] { return pending_.load() == 0; });
    }
    job_ = nullptr;
  }

 private:
  void loop(int idx, uint64_t seen) {
    for (;;) {
      const std::function<void(int, int)>* job;
      int tasks;
      if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen || quit_.load(); })) {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_.load() || generation_.load() != seen; });
      }
      {
        std::unique_lock<std::mutex> lk(m_);  // (uncontended: the caller is running its own share)
        if (quit_) return;
        seen = generation_.load();
        job = job_;
        tasks = tasks_;
      }
      if (idx < tasks) {
        in_parallel_ = true;
        (*job)(idx, tasks);
        in_parallel_ = false;
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::unique_lock<std::mutex> lk(m_);  // the caller may be about to sleep: no lost wake-up
          done_cv_.notify_one();
        }
      }
    }
  }

  void stop() {
    {
      std::unique_lock<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex m_, run_mutex_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  int tasks_ = 0;
  std::atomic<int> nthreads_{1};  // read without the lock by num_threads(); settled under run_mutex_
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> quit_{false};
  static thread_local bool in_parallel_;
};

thread_local bool Pool::in_parallel_ = false;

int default_threads() {
  if (const char* e = std::getenv("PSTAL_NUM_THREADS")) {
    int n = std::atoi(e);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? (int)hc : 1;
}

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }

void parallel_run(int max_tasks, const std::function<void(int, int)>& fn) {
  int tasks = std::max(1, std::min(max_tasks, num_threads()));
  pool().run(tasks, fn);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t max_tasks = std::max<int64_t>(1, n / grain);
  int tasks = (int)std::min<int64_t>(max_tasks, num_threads());
  if (tasks <= 1) {
    fn(0, n);
    return;
  }
  pool().run(tasks, [&](int i, int t) {
    int64_t b = n * i / t, e = n * (i + 1) / t;
    if (b < e) fn(b, e);
  });
}

}  // namespace pstal
