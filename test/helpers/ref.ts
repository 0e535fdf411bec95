/**
 * ref.ts: float64 reference implementations of every op, written as plainly as possible from the
 * definitions (no tricks, no shared code with lib/), for the op tests.
 */
export type F64 = Float64Array;

const prod = (s: number[]): number => s.reduce((a, b) => a * b, 1);

export function matmulRef(a: F64, b: F64, B: number, M: number, N: number, K: number, ta: boolean, tb: boolean, sharedB: boolean): F64 {
  const out = new Float64Array(B * M * N);
  for (let bi = 0; bi < B; bi++) {
    const ao = bi * M * K;
    const bo = sharedB ? 0 : bi * K * N;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[ao + (ta ? k * M + i : i * K + k)] * b[bo + (tb ? j * K + k : k * N + j)];
        out[bi * M * N + i * N + j] = s;
      }
  }
  return out;
}

/** NumPy broadcasting of f over a (shape sa) and b (shape sb). */
export function broadcastRef(a: F64, sa: number[], b: F64, sb: number[], f: (x: number, y: number) => number): F64 {
  const nd = Math.max(sa.length, sb.length);
  const A = [...Array(nd - sa.length).fill(1), ...sa];
  const Bs = [...Array(nd - sb.length).fill(1), ...sb];
  const out = A.map((d, i) => Math.max(d, Bs[i]));
  const n = prod(out);
  const res = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let ia = 0;
    let ib = 0;
    let stA = 1;
    let stB = 1;
    for (let d = nd - 1; d >= 0; d--) {
      const c = rem % out[d];
      rem = Math.floor(rem / out[d]);
      ia += (A[d] === 1 ? 0 : c) * stA;
      ib += (Bs[d] === 1 ? 0 : c) * stB;
      stA *= A[d];
      stB *= Bs[d];
    }
    res[i] = f(a[ia], b[ib]);
  }
  return res;
}

export const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is too coarse for 1e-5; use the series / continued fraction.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 200; n++) {
      term *= (-t * t) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  return Math.sign(x) * (1 - erfc);
};

export function softmaxRef(x: F64, rows: number, cols: number, log: boolean): F64 {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[r * cols + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j] - m);
    for (let j = 0; j < cols; j++) out[r * cols + j] = log ? x[r * cols + j] - m - Math.log(s) : Math.exp(x[r * cols + j] - m) / s;
  }
  return out;
}

export function layerNormRef(x: F64, w: F64, b: F64, rows: number, cols: number, eps: number): F64 {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < cols; j++) m += x[r * cols + j];
    m /= cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[r * cols + j] - m) ** 2;
    v /= cols;
    for (let j = 0; j < cols; j++) out[r * cols + j] = ((x[r * cols + j] - m) / Math.sqrt(v + eps)) * w[j] + b[j];
  }
  return out;
}

/** x [T, Cin], w [Cout, Cin, k] -> [T + 2p - k + 1, Cout] */
export function conv1dRef(x: F64, w: F64, bias: F64 | null, T: number, Cin: number, Cout: number, k: number, pad: number): F64 {
  const To = T + 2 * pad - k + 1;
  const out = new Float64Array(To * Cout);
  for (let t = 0; t < To; t++)
    for (let o = 0; o < Cout; o++) {
      let s = bias ? bias[o] : 0;
      for (let j = 0; j < k; j++) {
        const src = t + j - pad;
        if (src < 0 || src >= T) continue;
        for (let i = 0; i < Cin; i++) s += x[src * Cin + i] * w[o * Cin * k + i * k + j];
      }
      out[t * Cout + o] = s;
    }
  return out;
}

/** multi-head attention without dropout; q, k, v [L, D] */
/**
 * The dropout multiplier of element i, transcribed from native/common/rng.h: a key from splitmix64
 * of (seed * 0xD1B54A32D192ED03 ^ (i >> 32)), its high 32 bits; lowbias32 of (i's low 32 bits ^
 * key), 24 bits. Both backends' masks must be exactly this.
 */
export function dropoutScaleRef(seed: number, i: number, p: number): number {
  const M = (1n << 64n) - 1n;
  let x = ((BigInt(seed) * 0xd1b54a32d192ed03n) & M) ^ (BigInt(i) >> 32n);
  x = (x + 0x9e3779b97f4a7c15n) & M;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M;
  x ^= x >> 31n;
  const key = Number(x >> 32n);
  let h = (Number(BigInt(i) & 0xffffffffn) ^ key) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  const u = (h >>> 8) / 16777216;
  return u < Math.fround(p) ? 0 : Math.fround(1 / Math.fround(1 - Math.fround(p)));
}

/**
 * Attention in float64; with dropout, weight (h, i, j) is scaled by dropoutScaleRef(seed, (h L + i) L + j, p).
 * Lq < L: the first Lq query rows only (q [Lq, D]), the mask still numbered over L x L.
 */
export function attentionRef(q: F64, k: F64, v: F64, L: number, D: number, H: number, p = 0, seed = 0, Lq = L): F64 {
  const dh = D / H;
  const out = new Float64Array(Lq * D);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < Lq; i++) {
      const s = new Float64Array(L);
      let m = -Infinity;
      for (let j = 0; j < L; j++) {
        let d = 0;
        for (let c = 0; c < dh; c++) d += q[i * D + h * dh + c] * k[j * D + h * dh + c];
        s[j] = d / Math.sqrt(dh);
        m = Math.max(m, s[j]);
      }
      let z = 0;
      for (let j = 0; j < L; j++) z += (s[j] = Math.exp(s[j] - m));
      // the weights after dropout, once per row (the mask's hash is the slow part)
      const w = new Float64Array(L);
      for (let j = 0; j < L; j++) w[j] = (s[j] / z) * (p > 0 ? dropoutScaleRef(seed, (h * L + i) * L + j, p) : 1);
      for (let c = 0; c < dh; c++) {
        let acc = 0;
        for (let j = 0; j < L; j++) acc += w[j] * v[j * D + h * dh + c];
        out[i * D + h * dh + c] = acc;
      }
    }
  return out;
}

/**
 * Attention shapes whose dropout mask passes element 2^32 of its [H, L, L] numbering inside a query
 * row (where rng.h changes key), small because Lq < L: the crossing row `row` of head `head`; the
 * heads before it lie below 2^32, any after it above.
 */
export const MASK_CROSSING = [
  { Lq: 2, L: 37837, H: 5, dh: 4, row: 1, head: 3 },
  { Lq: 8, L: 23170, H: 9, dh: 2, row: 7, head: 8 },
];

/**
 * The max over positions [start, start + len) of the axis of x [outer, axisLen, inner], by its
 * rule: the first position's value, replaced only by a strictly greater one, so the first of equal
 * maxima wins, a NaN never replaces and a NaN at the first position stays (argmax 0); argmax counts
 * from start. Both backends' reduce_forward must give exactly this, bits and indices.
 */
export function maxRangeRef(x: Float32Array, outer: number, axisLen: number, inner: number, start: number, len: number): { out: Float32Array; arg: Float32Array } {
  const out = new Float32Array(outer * inner);
  const arg = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < inner; j++) {
      const at = (l: number): number => (o * axisLen + start + l) * inner + j;
      let best = 0;
      for (let l = 1; l < len; l++) if (x[at(l)] > x[at(best)]) best = l;
      out[o * inner + j] = x[at(best)];
      arg[o * inner + j] = best;
    }
  return { out, arg };
}

/** reduce over axis of shape [outer, len, inner] */
export function reduceRef(x: F64, outer: number, len: number, inner: number, kind: 'sum' | 'mean' | 'max'): F64 {
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < inner; j++) {
      let acc = kind === 'max' ? -Infinity : 0;
      for (let l = 0; l < len; l++) {
        const v = x[(o * len + l) * inner + j];
        acc = kind === 'max' ? Math.max(acc, v) : acc + v;
      }
      out[o * inner + j] = kind === 'mean' ? acc / len : acc;
    }
  return out;
}

export function topkMeanRef(x: F64, T: number, C: number, k: number): F64 {
  const out = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const col = [...Array(T).keys()].map((t) => x[t * C + c]).sort((a, b) => b - a);
    out[c] = col.slice(0, k).reduce((s, v) => s + v, 0) / k;
  }
  return out;
}

/** 1-D RoI align (torchvision conventions along time) */
export function roiAlignRef(x: F64, T: number, D: number, rois: number[], bins: number, sr: number, aligned: boolean): F64 {
  const R = rois.length / 2;
  const out = new Float64Array(R * bins * D);
  for (let r = 0; r < R; r++) {
    const off = aligned ? 0.5 : 0;
    const s = rois[2 * r] - off;
    const e = rois[2 * r + 1] - off;
    let len = e - s;
    if (!aligned) len = Math.max(len, 1);
    const bin = len / bins;
    const grid = Math.max(sr > 0 ? sr : Math.ceil(len / bins), 1);
    for (let b = 0; b < bins; b++)
      for (let g = 0; g < grid; g++) {
        let y = s + b * bin + ((g + 0.5) * bin) / grid;
        if (y < -1 || y > T) continue;
        if (y <= 0) y = 0;
        let lo = Math.floor(y);
        let hi = lo + 1;
        if (lo >= T - 1) {
          lo = hi = T - 1;
          y = lo;
        }
        const l = y - lo;
        for (let d = 0; d < D; d++) out[(r * bins + b) * D + d] += ((1 - l) * x[lo * D + d] + l * x[hi * D + d]) / grid;
      }
  }
  return out;
}

/**
 * Values for max's tie and NaN cases: small integers (many ties), both zeros, infinities, NaN; the
 * range's first position NaN in some columns, and columns where only that position is not NaN.
 */
export function maxCases(outer: number, axisLen: number, inner: number, start: number, len: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const draw = (n: number): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // an LCG: any spread of the picks will do
    return Math.floor((state / 2 ** 32) * n);
  };
  const pick = [-2, -1, -0, 0, 1, 2, 2, Infinity, -Infinity, NaN];
  const x = Float32Array.from({ length: outer * axisLen * inner }, () => pick[draw(pick.length)]);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < inner; j++) {
      const at = (l: number): number => (o * axisLen + start + l) * inner + j;
      if (j % 5 === 1) x[at(0)] = NaN; // NaN at the range start: the result, argmax 0
      if (j % 7 === 2) for (let l = 1; l < len; l++) x[at(l)] = NaN; // only the start is a number
      if (j % 9 === 3) for (let l = 0; l < len; l++) x[at(l)] = -0; // all equal: the first
    }
  return x;
}
