// ---------------------------------------------------------------------------------------------
// attention.cc: multi-head scaled-dot-product attention over all L tokens (no mask), the core of
// the Reliability-aware Attention Block (SPEC §2 step 2). Inputs are the already in-projected
// q, k, v [L, D]; head h is the column block [h*dh, (h+1)*dh), addressed with GEMM row strides,
// so no head split/merge copies are made. Heads run in parallel, one thread each.
//
//   P_h = softmax(Q_h K_h^T / sqrt(dh)),  O_h = dropout(P_h) V_h
//
// The forward saves P [H, L, L]; the dropout mask is regenerated from the seed in the backward.
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "common/parallel.h"
#include "cpu/dropout.h"
#include "cpu/gemm.h"
#include "cpu/scratch.h"
#include "cpu/softmax.h"
#include "ops/attention.h"

namespace pstal {
namespace {

thread_local Scratch drop_scratch, mask_scratch, grad_scratch, score_scratch;

// Query rows a block: the block's scores (and its dropped copy) are still in cache (L2/L3) from
// the Q K^T product through the softmax and the dropout to the P V product, instead of four
// passes over an L x L matrix from memory (100 MB a head for THUMOS14's longest test video). A
// multiple of the GEMM's depth block, so that the backward's sums over query rows keep their order
// (the same bits as one block), and large enough that re-packing K and V per block stays cheap.
int64_t query_block(int64_t L) {
  static const int64_t budget = [] {
    const char* e = std::getenv("PSTAL_ATTENTION_BLOCK");
    return e ? std::atoll(e) : (int64_t)1 << 20;
  }();
  const int64_t kc = gemm_depth_block();
  return std::min(L, std::max<int64_t>(1, (budget / std::max<int64_t>(L, 1)) / kc) * kc);
}

}  // namespace

// attention_forward(out, probs, q, k, v, L, D, H, dropout_p, seed). probs may be null when no
// gradient is needed (inference): each block's scores then live in a per-thread scratch, and the
// [H, L, L] buffer (27 MB for an 900-snippet video) is neither allocated nor written.
void attention_forward(const AttentionForward& op) {
  const auto& [L, D, H, p, seed, out, probs, q, k, v] = op;
  int64_t dh = D / H;
  float scale = 1.f / std::sqrt((float)dh);
  int64_t rb = query_block(L);
  parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      for (int64_t i0 = 0; i0 < L; i0 += rb) {
        int64_t rows = std::min(rb, L - i0);
        float* S = probs ? probs + (h * L + i0) * L : score_scratch.get((size_t)(rb * L));
        sgemm_serial(false, true, rows, L, dh, scale, q + i0 * D + h * dh, D, k + h * dh, D, 0.f, S, L);
        for (int64_t i = 0; i < rows; i++) softmax_row(S + i * L, S + i * L, L, false);
        const float* Sd = S;
        if (p > 0) {
          // the same mask bits as the whole head's: element (i, j) of head h is number h L^2 + i L + j
          float* sd = drop_scratch.get((size_t)(rb * L));
          apply_dropout(sd, S, rows * L, seed, (uint64_t)(h * L + i0) * L, (float)p);
          Sd = sd;
        }
        sgemm_serial(false, false, rows, dh, L, 1.f, Sd, L, v + h * dh, D, 0.f, out + i0 * D + h * dh, D);
      }
    }
  });
}

// attention_backward(dq, dk, dv, dout, probs, q, k, v, L, D, H, dropout_p, seed), in blocks of
// query rows as the forward. dV = Pd^T dO and dK = dS^T Q sum over the query rows, so each block
// adds its share (beta = 1 after the first); a block a multiple of the GEMM's depth block keeps
// the additions in the one-block order, hence the same bits.
void attention_backward(const AttentionBackward& op) {
  const auto& [L, D, H, p, seed, dq, dk, dv, dout, probs, q, k, v] = op;
  int64_t dh = D / H;
  float scale = 1.f / std::sqrt((float)dh);
  const int64_t rb = query_block(L);
  parallel_for(H, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      for (int64_t i0 = 0; i0 < L; i0 += rb) {
        int64_t rows = std::min(rb, L - i0);
        const float* P = probs + (h * L + i0) * L;
        const float* dO = dout + i0 * D + h * dh;
        float beta = i0 == 0 ? 0.f : 1.f;
        // the block's mask (the forward's bits), generated once for Pd = P * mask and dPd * mask
        float* mask = nullptr;
        const float* Pd = P;
        if (p > 0) {
          mask = mask_scratch.get((size_t)(rb * L));
          dropout_mask(mask, rows * L, seed, (uint64_t)(h * L + i0) * L, (float)p);
          float* pd = drop_scratch.get((size_t)(rb * L));
          for (int64_t i = 0; i < rows * L; i++) pd[i] = P[i] * mask[i];
          Pd = pd;
        }
        // dV += Pd^T dO
        sgemm_serial(true, false, L, dh, rows, 1.f, Pd, L, dO, D, beta, dv + h * dh, D);
        // dPd = dO V^T, then through the mask and the softmax
        float* dP = grad_scratch.get((size_t)(rb * L));
        sgemm_serial(false, true, rows, L, dh, 1.f, dO, D, v + h * dh, D, 0.f, dP, L);
        if (mask)
          for (int64_t i = 0; i < rows * L; i++) dP[i] *= mask[i];
        for (int64_t i = 0; i < rows; i++) softmax_row_backward(dP + i * L, dP + i * L, P + i * L, L, false);
        // dQ = dS K * scale (this block's rows), dK += dS^T Q * scale
        sgemm_serial(false, false, rows, dh, L, scale, dP, L, k + h * dh, D, 0.f, dq + i0 * D + h * dh, D);
        sgemm_serial(true, false, L, dh, rows, scale, dP, L, q + i0 * D + h * dh, D, beta, dk + h * dh, D);
      }
    }
  });
}

}  // namespace pstal
