// ---------------------------------------------------------------------------------------------
// attention.h: multi-head scaled-dot-product attention with dropout on the weights (lib/ops/attention.ts).
// The arguments of each op as a plain struct, read and checked once for both addons by
// ops/attention.cc; the kernels behind these signatures are native/cpu/attention.cc (the reference) and
// native/cuda/attention.cu. Napi-free.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pstal {

// attention_forward(out, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed): Lq query rows q [Lq, D]
// attend over Lk key rows k, v [Lk, D] (Lq <= Lk: the queries are the first Lq tokens, whose
// weights are the first Lq rows of each head's Lk x Lk matrix; the dropout mask numbers element
// (h, i, j) as (h Lk + i) Lk + j, the full matrix's index, so dropping the last Lk - Lq query rows
// changes nothing else). out [Lq, D]. probs [H, Lq, Lk] may be null when no gradient is needed
// (inference): the scores then live in scratch, and the buffer is neither allocated nor written.
// What probs holds is for the same backend's backward only (the CPU marks the dropped weights in
// their sign bits; CUDA saves them plain).
struct AttentionForward {
  int64_t Lq, Lk, D, H;
  double p;
  uint64_t seed;
  float* out;
  float* probs;  // may be null
  const float* q;
  const float* k;
  const float* v;
};
void attention_forward(const AttentionForward& a);

// attention_backward(dq, dk, dv, dout, probs, q, k, v, Lq, Lk, D, H, dropout_p, seed): dq [Lq, D],
// dk, dv [Lk, D]
struct AttentionBackward {
  int64_t Lq, Lk, D, H;
  double p;
  uint64_t seed;
  float* dq;
  float* dk;
  float* dv;
  const float* dout;
  const float* probs;
  const float* q;
  const float* k;
  const float* v;
};
void attention_backward(const AttentionBackward& a);

}  // namespace pstal
