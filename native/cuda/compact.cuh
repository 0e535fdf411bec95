// ---------------------------------------------------------------------------------------------
// compact.cuh: block-wide stream compaction in thread order, one tile at a time (a ballot scan).
// A block walks its items in tiles of kThreads (item i0 + threadIdx.x in tile i0); each thread
// offers at most one item per tile. compact_tile ranks the kept items of the tile in thread order
// (warp by warp, lane by lane) and calls emit(rank) on each keeping thread, rank in [0, kept);
// it returns the tile's kept count to every thread. A caller adds a running count of the earlier
// tiles to the rank, so the kept items land in item order with no sort and no atomics.
//
// Every thread of the block must call it, with blockDim.x == kThreads. It holds two barriers:
// one before the ranks are read, and one after emit, so emit's writes are visible to the whole
// block when compact_tile returns, and the shared counts are free for the next tile.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cuda_runtime.h>

namespace pstal {
namespace cuda {

template <int kThreads, typename Emit>
__device__ inline int compact_tile(bool keep, Emit emit) {
  static_assert(kThreads % 32 == 0, "whole warps");
  constexpr int kWarps = kThreads / 32;
  __shared__ int warp_counts[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned ballot = __ballot_sync(0xffffffffu, keep);
  if (lane == 0) warp_counts[warp] = __popc(ballot);
  __syncthreads();
  int before = 0, tile = 0;
  for (int w = 0; w < kWarps; w++) {
    if (w < warp) before += warp_counts[w];
    tile += warp_counts[w];
  }
  if (keep) emit(before + __popc(ballot & ((1u << lane) - 1u)));
  __syncthreads();  // emit's writes complete; warp_counts free for the next tile
  return tile;
}

}  // namespace cuda
}  // namespace pstal
