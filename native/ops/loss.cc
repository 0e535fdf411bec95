// loss.cc: the arguments of the ops of ops/loss.h, read and checked once for both addons.
#include "ops/loss.h"

#include <string>

#include "common/op.h"

namespace pstal {

// loss_forward(kind, out, a, b, n, beta)   (BCE: a = p, b = target)
PSTAL_OP(loss_forward) {
  int64_t kind = args.i64(0, "kind"), n = args.i64(4, "n");
  float beta = (float)args.f64(5, "beta");
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown loss kind " + std::to_string(kind));
  float* out = args.buf(1, n, "out");
  const float* a = args.buf(2, n, "a");
  const float* b = args.buf(3, n, "b");
  loss_forward(LossForward{kind, n, beta, out, a, b});
  return args.env().Undefined();
}

// loss_backward(kind, da, dout, a, b, n, beta): gradient with respect to a (for b it is -da, except BCE)
PSTAL_OP(loss_backward) {
  int64_t kind = args.i64(0, "kind"), n = args.i64(5, "n");
  float beta = (float)args.f64(6, "beta");
  PSTAL_CHECK(args, kind >= 0 && kind <= 2, "unknown loss kind " + std::to_string(kind));
  float* da = args.buf(1, n, "da");
  const float* g = args.buf(2, n, "dout");
  const float* a = args.buf(3, n, "a");
  const float* b = args.buf(4, n, "b");
  loss_backward(LossBackward{kind, n, beta, da, g, a, b});
  return args.env().Undefined();
}

static void focal_args(Args& args, FocalBce& a, size_t at) {
  a.n = args.i64(at, "n");
  PSTAL_CHECK(args, a.n >= 0, "n must be non-negative, received " + std::to_string(a.n));
  a.scale = (float)args.f64(at + 1, "scale");
}

// focal_bce_forward(out, p, y, c, n, scale)  (ops/loss.h)
PSTAL_OP(focal_bce_forward) {
  FocalBce a{};
  focal_args(args, a, 4);
  a.out = args.buf(0, 1, "out");
  a.p = args.buf(1, a.n, "p");
  a.y = args.buf(2, a.n, "y");
  a.c = args.buf(3, a.n, "c");
  focal_bce_forward(a);
  return args.env().Undefined();
}

// focal_bce_backward(dp, g, p, y, c, n, scale)  (ops/loss.h)
PSTAL_OP(focal_bce_backward) {
  FocalBce a{};
  focal_args(args, a, 5);
  a.dp = args.buf(0, a.n, "dp");
  a.g = args.buf(1, 1, "g");
  a.p = args.buf(2, a.n, "p");
  a.y = args.buf(3, a.n, "y");
  a.c = args.buf(4, a.n, "c");
  for (const float* in : {a.g, a.p, a.y, a.c}) PSTAL_CHECK(args, in != a.dp, "dp must not be an input");
  focal_bce_backward(a);
  return args.env().Undefined();
}

static void similarity_args(Args& args, SimilarityMean& a, size_t at) {
  a.rows = args.i64(at, "rows"), a.D = args.i64(at + 1, "D"), a.C = args.i64(at + 2, "C");
  PSTAL_CHECK(args, a.rows >= 0 && a.D >= 0 && a.C >= 0, "rows, D and C must be non-negative");
  a.scale = (float)args.f64(at + 3, "scale"), a.eps = (float)args.f64(at + 4, "eps");
  a.idx = args.i32(at - 1, "index", &a.R);
  PSTAL_CHECK(args, a.R >= 1, "index must name at least one row");
  for (int64_t i = 0; i < a.R; i++)
    PSTAL_CHECK(args, a.idx[i] >= 0 && a.idx[i] < a.rows,
                "index " + std::to_string(a.idx[i]) + " at position " + std::to_string(i) + " is out of range for " + std::to_string(a.rows) + " rows");
}

// similarity_mean_forward(out, E, P, index, rows, D, C, scale, eps)  (ops/loss.h)
PSTAL_OP(similarity_mean_forward) {
  SimilarityMean a{};
  similarity_args(args, a, 4);
  a.out = args.buf(0, a.C, "out");
  a.E = args.buf(1, a.rows * a.D, "E");
  a.P = args.buf(2, a.C * a.D, "P");
  PSTAL_CHECK(args, a.out != a.E && a.out != a.P, "out must not be an input");
  similarity_mean_forward(a);
  return args.env().Undefined();
}

// similarity_mean_backward(dE, g, E, P, index, rows, D, C, scale, eps)  (ops/loss.h)
PSTAL_OP(similarity_mean_backward) {
  SimilarityMean a{};
  similarity_args(args, a, 5);
  a.dE = args.buf(0, a.rows * a.D, "dE");
  a.g = args.buf(1, a.C, "g");
  a.E = args.buf(2, a.rows * a.D, "E");
  a.P = args.buf(3, a.C * a.D, "P");
  for (const float* in : {a.g, a.E, a.P}) PSTAL_CHECK(args, in != a.dE, "dE must not be an input");
  similarity_mean_backward(a);
  return args.env().Undefined();
}

// The classes, C, scale and the K tensors a_k, from argument `at` on (classes Int32Array, C, scale,
// then a_0 .. a_{K-1} from argument `at + 3 + skip`).
static void contrastive_args(Args& args, ContrastiveTerms& p, size_t at, size_t skip, std::vector<const float*>& as) {
  p.classes = args.i32(at, "classes", &p.K);
  p.C = args.i64(at + 1, "C");
  p.scale = (float)args.f64(at + 2, "scale");
  PSTAL_CHECK(args, p.K >= 1 && p.K <= MAX_CONTRASTIVE_CLASSES, "classes must name 1 to 4096 classes, received " + std::to_string(p.K));
  PSTAL_CHECK(args, p.C >= 1, "C must be positive, received " + std::to_string(p.C));
  for (int64_t k = 0; k < p.K; k++)
    PSTAL_CHECK(args, p.classes[k] >= 0 && p.classes[k] < p.C,
                "class " + std::to_string(p.classes[k]) + " at position " + std::to_string(k) + " is out of range for C = " + std::to_string(p.C));
  as.resize((size_t)p.K);
  for (int64_t k = 0; k < p.K; k++) as[(size_t)k] = args.buf(at + 3 + skip + (size_t)k, p.C, "a");
  p.a = as.data();
}

// contrastive_terms_forward(out, b, classes, C, scale, a_0, ..., a_{K-1})  (ops/loss.h)
PSTAL_OP(contrastive_terms_forward) {
  ContrastiveTerms p{};
  std::vector<const float*> as;
  contrastive_args(args, p, 2, 0, as);
  PSTAL_CHECK(args, (int64_t)args.count() == 5 + p.K, "expected one tensor a_k per class");
  p.out = args.buf(0, 1, "out");
  p.b = args.buf(1, p.C, "b");
  for (const float* x : as) PSTAL_CHECK(args, x != p.out, "out must not be an input");
  PSTAL_CHECK(args, p.b != p.out, "out must not be an input");
  contrastive_terms_forward(p);
  return args.env().Undefined();
}

// contrastive_terms_backward(g, b, classes, C, scale, db, a_0, ..., a_{K-1}, da_0, ..., da_{K-1})  (ops/loss.h)
PSTAL_OP(contrastive_terms_backward) {
  ContrastiveTerms p{};
  std::vector<const float*> as;
  contrastive_args(args, p, 2, 1, as);
  PSTAL_CHECK(args, (int64_t)args.count() == 6 + 2 * p.K, "expected a tensor a_k and a gradient da_k per class");
  p.g = args.buf(0, 1, "g");
  p.b = args.buf(1, p.C, "b");
  p.db = args.buf(5, p.C, "db");
  std::vector<float*> das((size_t)p.K);
  for (int64_t k = 0; k < p.K; k++) das[(size_t)k] = args.buf(6 + (size_t)(p.K + k), p.C, "da");
  p.da = das.data();
  // every output distinct from every input and from each other
  std::vector<const float*> outs{p.db};
  for (float* d : das) outs.push_back(d);
  for (size_t i = 0; i < outs.size(); i++) {
    PSTAL_CHECK(args, outs[i] != p.g && outs[i] != p.b, "a gradient output must not be an input");
    for (const float* x : as) PSTAL_CHECK(args, outs[i] != x, "a gradient output must not be an input");
    for (size_t j = i + 1; j < outs.size(); j++) PSTAL_CHECK(args, outs[i] != outs[j], "the gradient outputs must be distinct buffers");
  }
  contrastive_terms_backward(p);
  return args.env().Undefined();
}

}  // namespace pstal
