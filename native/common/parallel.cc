// ---------------------------------------------------------------------------------------------
// parallel.cc: the thread pool behind parallel_for (see parallel.h).
// ---------------------------------------------------------------------------------------------
#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>


namespace pstal {
namespace {

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return nthreads_; }

  void resize(int n) {
    if (n < 1) n = 1;
    stop();
    nthreads_ = n;
    uint64_t gen;
    {
      std::unique_lock<std::mutex> lk(m_);
      quit_ = false;
      gen = generation_;
    }
    // New workers start at the current generation: starting from 0 they would see a finished
    // job as new and call its (already cleared) function.
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, gen] { loop(i, gen); });
  }

  // Runs fn(i, tasks) for i in [0, tasks) with the caller as task 0.
  void run(int tasks, const std::function<void(int, int)>& fn) {
    if (tasks <= 1 || in_parallel_) {
      for (int i = 0; i < tasks; i++) fn(i, tasks);
      return;
    }
    {
      std::unique_lock<std::mutex> lk(m_);
      job_ = &fn;
      tasks_ = tasks;
      pending_ = tasks - 1;
      generation_++;
    }
    cv_.notify_all();
    in_parallel_ = true;
    fn(0, tasks);
    in_parallel_ = false;
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void loop(int idx, uint64_t seen) {
    for (;;) {
      const std::function<void(int, int)>* job;
      int tasks;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
        job = job_;
        tasks = tasks_;
      }
      if (idx < tasks) {
        in_parallel_ = true;
        (*job)(idx, tasks);
        in_parallel_ = false;
        std::unique_lock<std::mutex> lk(m_);
        if (--pending_ == 0) done_cv_.notify_one();
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
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  int tasks_ = 0, pending_ = 0, nthreads_ = 1;
  uint64_t generation_ = 0;
  bool quit_ = false;
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
