// ---------------------------------------------------------------------------------------------
// counters.h: the launch counter. The op registry (common/op.cc) counts every native call per op;
// the CUDA backend also counts its device work per op: each kernel launch (PSTAL_CUDA_LAUNCH) and
// each cuBLAS call, attributed to the op running on the calling thread. `call_counts()` reads the
// counts, `reset_call_counts()` clears them (lib/runtime/native.ts: callCounts, resetCallCounts);
// scripts/profile-stage1.ts prints them per training iteration. Process-wide, relaxed atomics: a
// count is a few nanoseconds beside a Node-API call. Napi-free, so kernels can include it.
// ---------------------------------------------------------------------------------------------
#pragma once

namespace pstal {

// One device kernel launch (or library call that launches kernels) by the op on this thread.
void count_launch();

}  // namespace pstal
