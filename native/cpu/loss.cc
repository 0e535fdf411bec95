// ---------------------------------------------------------------------------------------------
// loss.cc: elementwise losses and their gradients; lib/ops/loss.ts applies weights and the
// reduction (mean / sum), so the focal-weighted BCE of SPEC §2 and the stage-2 smooth-L1 (§4)
// are compositions of these.
//   BCE       l = -(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch does
//   smooth L1 l = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = a - b
//   MSE       l = d^2
// ---------------------------------------------------------------------------------------------
#include <algorithm>
#include <cmath>

#include "cpu/scratch.h"
#include "ops/loss.h"

namespace pstal {

enum Loss { BCE = 0, SMOOTH_L1 = 1, MSE = 2 };

// loss_forward(kind, out, a, b, n, beta)   (BCE: a = p, b = target)
void loss_forward(const LossForward& op) {
  const auto& [kind, n, beta, out, a, b] = op;
  for (int64_t i = 0; i < n; i++) {
    if (kind == BCE) {
      float lp = std::max(std::log(a[i]), -100.f), lq = std::max(std::log(1.f - a[i]), -100.f);
      out[i] = -(b[i] * lp + (1.f - b[i]) * lq);
    } else {
      float d = a[i] - b[i], ad = std::fabs(d);
      out[i] = kind == MSE ? d * d : (ad < beta ? 0.5f * d * d / beta : ad - 0.5f * beta);
    }
  }
}

// loss_backward(kind, da, dout, a, b, n, beta): gradient with respect to a (for b it is -da, except BCE)
void loss_backward(const LossBackward& op) {
  const auto& [kind, n, beta, da, g, a, b] = op;
  for (int64_t i = 0; i < n; i++) {
    if (kind == BCE) {
      da[i] = g[i] * (a[i] - b[i]) / std::max((1.f - a[i]) * a[i], 1e-12f);
    } else {
      float d = a[i] - b[i];
      float dd = kind == MSE ? 2.f * d : (std::fabs(d) < beta ? d / beta : (d > 0 ? 1.f : (d < 0 ? -1.f : 0.f)));
      da[i] = g[i] * dd;
    }
  }
}

// ---- the focal BCE: the separate ops' kernels in a row (ops/loss.h focal_bce_chain) --------------

static thread_local Scratch focal_work;  // the chains' workspace (focal BCE, similarity mean)

void focal_bce_forward(const FocalBce& a) {
  focal_bce_chain(a, focal_work.get((size_t)focal_bce_work(a.n)), false);
}

void focal_bce_backward(const FocalBce& a) {
  focal_bce_chain(a, focal_work.get((size_t)focal_bce_work(a.n)), true);
}

void similarity_mean_forward(const SimilarityMean& a) {
  similarity_mean_chain(a, focal_work.get((size_t)similarity_mean_work(a.R, a.D, a.C)), false);
}

void similarity_mean_backward(const SimilarityMean& a) {
  similarity_mean_chain(a, focal_work.get((size_t)similarity_mean_work(a.R, a.D, a.C)), true);
}

void contrastive_terms_forward(const ContrastiveTerms& a) {
  contrastive_terms_chain(a, focal_work.get((size_t)contrastive_terms_work(a.K)), false);
}

void contrastive_terms_backward(const ContrastiveTerms& a) {
  contrastive_terms_chain(a, focal_work.get((size_t)contrastive_terms_work(a.K)), true);
}

}  // namespace pstal
