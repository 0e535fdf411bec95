// kernels_test.cc: the CPU kernels called from plain C++, without Node (test/unit/native-kernels.test.ts
// builds and runs it). Proves that native/cpu holds Napi-free kernels behind the signatures of
// native/ops/*.h. Prints one line per check, "ok ..." or "FAIL ...", and exits 1 on any failure.
#include <cmath>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "ops/elementwise.h"
#include "ops/norm.h"
#include "ops/tensor.h"
#include "common/rng.h"
#include "cpu/dropout.h"
#include "common/parallel.h"

using namespace pstal;

static int failures = 0;

static void check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) failures++;
}

int main() {
  // binary_forward: [2, 3] + [3] broadcast along the rows
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {10, 20, 30}, out(6);
  BinaryForward bf{ADD, out.data(), a.data(), b.data(), {2, 3}, {3, 1}, {0, 1}, 6, 6, 3};
  binary_forward(bf);
  check(out == std::vector<float>({11, 22, 33, 14, 25, 36}), "binary_forward add broadcasts [3] over [2, 3]");

  // sum_to: the backward of that broadcast sums the rows back to [3]
  std::vector<float> g(3, -1.f);
  SumTo st{g.data(), out.data(), {2, 3}, {0, 1}, 6, 3};
  sum_to(st);
  check(g == std::vector<float>({25, 47, 69}), "sum_to sums [2, 3] down to [3]");

  // unary kinds: relu (kind 0) forward and backward; tanh (kind 5) against libm
  check(unary_kinds() == 9, "nine unary kinds");
  std::vector<float> x = {-2, -0.5f, 0.5f, 2}, y(4), dx(4), dy(4, 1.f);
  unary_forward(UnaryForward{0, y.data(), x.data(), 4});
  check(y == std::vector<float>({0, 0, 0.5f, 2}), "relu forward");
  unary_backward(UnaryBackward{0, dx.data(), dy.data(), x.data(), y.data(), 4});
  check(dx == std::vector<float>({0, 0, 1, 1}), "relu backward");
  unary_forward(UnaryForward{5, y.data(), x.data(), 4});
  bool close = true;
  for (int i = 0; i < 4; i++) close = close && std::fabs(y[i] - std::tanh(x[i])) <= 1e-7f;
  check(close, "tanh forward matches libm");

  // affine, axpy, first_nonfinite
  affine(Affine{y.data(), x.data(), 4, 2.f, 1.f});
  check(y == std::vector<float>({-3, 0, 2, 5}), "affine 2x + 1");
  axpy(Axpy{y.data(), x.data(), 4, -1.f});
  check(y == std::vector<float>({-1, 0.5f, 1.5f, 3}), "axpy y -= x");
  y[2] = NAN;
  check(first_nonfinite(FirstNonfinite{y.data(), 4}) == 2, "first_nonfinite finds the NaN");

  // softmax over the rows of [2, 3]: each row sums to 1, and [0, 0, 0] is uniform
  std::vector<float> logits = {0, 0, 0, 1, 2, 3}, probs(6);
  softmax_forward(SoftmaxForward{2, 3, false, probs.data(), logits.data()});
  float row1 = probs[3] + probs[4] + probs[5];
  check(std::fabs(probs[0] - 1.f / 3) < 1e-7f && std::fabs(row1 - 1.f) < 1e-6f && probs[5] > probs[4], "softmax_forward");
  // dropout across a block of 2^32 elements (the key changes there): both loops agree with
  // rng.h's dropout_scale element by element, on each side of the boundary
  {
    const int n = 300;
    const uint64_t base = (1ULL << 32) - 150, seed = 77;
    std::vector<float> in(n), outd(n), outm(n), marked(n);
    for (int i = 0; i < n; i++) in[i] = marked[i] = 0.5f + (float)i / n;
    apply_dropout(outd.data(), in.data(), n, seed, base, 0.3f);
    apply_dropout_mark(outm.data(), marked.data(), n, 1.f, seed, base, 0.3f);
    int bad = 0, dropped = 0;
    for (int i = 0; i < n; i++) {
      float want = in[i] * dropout_scale(seed, base + i, 0.3f);
      dropped += want == 0.f;
      bad += outd[i] != want || outm[i] != want || std::signbit(marked[i]) != (want == 0.f);
    }
    check(bad == 0 && dropped > 50 && dropped < 130, "apply_dropout and apply_dropout_mark are rng.h's masks across 2^32");
  }
  // parallel_for from several threads at once (a server's worker threads share the one pool)
  // while another thread resizes the pool: every result equals the single-thread one, and no call
  // hangs (a job sized before another thread shrank the pool once waited for workers that were gone)
  {
    const int64_t n = 1 << 16;
    std::vector<float> src(n);
    for (int64_t i = 0; i < n; i++) src[i] = (float)((i * 7919) % 1000) / 1000.f;
    auto chunked_sum = [&](std::vector<double>& parts) {
      // per-element output (not a reduction): the value does not depend on the partition
      std::vector<float> dst(n);
      parallel_for(n, 1024, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) dst[i] = src[i] * 2.f + 1.f;
      });
      double s = 0;
      for (float v : dst) s += v;
      parts.push_back(s);
    };
    set_num_threads(1);
    std::vector<double> single;
    chunked_sum(single);
    set_num_threads(4);
    std::atomic<bool> stop{false};
    std::thread resizer([&] {
      for (int k = 0; !stop.load(); k++) set_num_threads(1 + k % 4);
    });
    std::vector<std::vector<double>> got(4);
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; c++)
      callers.emplace_back([&, c] {
        for (int r = 0; r < 200; r++) chunked_sum(got[c]);
      });
    for (auto& t : callers) t.join();
    stop = true;
    resizer.join();
    int bad = 0;
    for (auto& g : got)
      for (double v : g) bad += v != single[0];
    check(bad == 0 && got[0].size() == 200, "parallel_for from 4 threads while the pool is resized: the single-thread results");
  }
  return failures ? 1 : 0;
}
