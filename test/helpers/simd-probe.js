// simd-probe.js: runs a fixed set of CPU kernels with every vector path they have and prints one
// sha256 per output (JSON), for test/unit/simd-paths.test.ts, which runs it under each PSTAL_SIMD
// level in a fresh process (the level is read once per process).
//   PSTAL_SIMD=avx2 node test/helpers/simd-probe.js <pstal.node> [--gemm]
// Plain JavaScript with no imports of lib/: it starts in ~0.1 s.
'use strict';
const crypto = require('crypto');
const addon = require(process.argv[2]);
const withGemm = process.argv.includes('--gemm');

let state = 12345;
const rnd = (n, lo = -1, hi = 1) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    a[i] = lo + ((hi - lo) * (state >>> 8)) / 16777216;
  }
  return a;
};
const buf = (n) => new addon.NativeBuffer(n);
const from = (a) => new addon.NativeBuffer(a);
const hash = (b) => crypto.createHash('sha256').update(Buffer.from(b.read().buffer)).digest('hex').slice(0, 16);
const out = { simd: addon.gemm_info().simd };

// Softmax and log-softmax rows (row max, the exp polynomial, the sums), lengths with every tail
// of the 16- and 8-wide loops, a few NaN and large values among them.
for (const cols of [1, 7, 8, 15, 16, 17, 33, 330]) {
  const rows = 9;
  const x = rnd(rows * cols, -30, 30);
  x[0] = NaN;
  if (x.length > 5) x[5] = -100;
  for (const log of [false, true]) {
    const y = buf(rows * cols);
    addon.softmax_forward(y, from(x), rows, cols, log);
    out[`softmax ${cols} log=${log}`] = hash(y);
  }
}

// The maximum over an axis and its index (ties and NaNs among the values)
for (const [len, inner] of [[5, 1], [37, 9], [64, 24], [3, 17]]) {
  const x = rnd(2 * len * inner).map((v) => Math.round(v * 4) / 4);
  x[3] = NaN;
  const o = buf(2 * inner), a = buf(2 * inner);
  addon.reduce_forward(2, o, a, from(x), 2, len, inner);
  out[`max ${len}x${inner}`] = `${hash(o)} ${hash(a)}`;
}

// Attention forward and backward (its softmax, dropout marks, and the backward's row pass), with the
// GEMMs: products with one head's columns read A in place, the others pack it.
if (withGemm) {
  for (const [Lq, L, D, H, p] of [[37, 37, 48, 3, 0.1], [20, 37, 48, 3, 0.1], [130, 130, 64, 2, 0], [130, 130, 64, 2, 0.25], [11, 300, 64, 1, 0.1]]) {
    const q = from(rnd(L * D)), k = from(rnd(L * D)), v = from(rnd(L * D)), g = from(rnd(Lq * D));
    const o = buf(Lq * D), probs = buf(H * Lq * L), dq = buf(Lq * D), dk = buf(L * D), dv = buf(L * D);
    addon.attention_forward(o, probs, q, k, v, Lq, L, D, H, p, 7);
    addon.attention_backward(dq, dk, dv, g, probs, q, k, v, Lq, L, D, H, p, 7);
    out[`attention ${Lq}/${L} D=${D} H=${H} p=${p}`] = [o, probs, dq, dk, dv].map(hash).join(' ');
  }
  for (const [M, N, K] of [[13, 32, 400], [130, 21, 200], [130, 64, 9], [37, 160, 400]])
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const a = from(rnd(M * K)), b = from(rnd(K * N)), c = from(rnd(M * N));
        addon.matmul_forward(c, a, b, 1, M, N, K, ta, tb, 0, 0, 0.5);
        out[`matmul ${M}x${N}x${K} ta=${ta} tb=${tb}`] = hash(c);
      }
}
console.log(JSON.stringify(out));
