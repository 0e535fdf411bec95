// ---------------------------------------------------------------------------------------------
// parallel.h: a persistent thread pool and parallel_for over [0, n).
//
// Threads: all cores by default, PSTAL_NUM_THREADS overrides, set_num_threads() at run time.
// Workers sleep on a condition variable between jobs, so calling many small ops costs no thread
// creation. Nested parallel_for calls (a kernel inside a parallel region) run serially.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <functional>

namespace pstal {

int num_threads();
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint chunks covering [0, n); chunks of at least `grain` items.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Calls fn(thread_index, thread_count) once per thread (thread_count = min(num_threads(), max_tasks)).
void parallel_run(int max_tasks, const std::function<void(int, int)>& fn);

}  // namespace pstal
