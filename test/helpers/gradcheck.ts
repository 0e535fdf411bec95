/**
 * gradcheck.ts: the harness every op test uses.
 *
 * forward: our float32 op against a float64 reference written plainly in TypeScript;
 * backward: our analytic gradient of L = sum(op(x) * R) (R random) against central finite
 * differences of the float64 reference, so the check measures our backward, not float32 noise.
 * Probes: at most 64 elements of each input (OpCase.probes), distinct, all of them for smaller inputs.
 * Tolerances: float32 arithmetic over sums of n terms errs by ~sqrt(n) * 6e-8 relative; we use the
 * norm-relative error with 2e-5 (forward) and 1e-4 (backward; the reference's differences are
 * exact to ~1e-9 with h = 1e-5 in float64, so what remains is our float32 rounding).
 */
import type { ExecutionContext } from 'ava';
import { Tensor, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { Rng } from '../../lib/util/rng';

export type RefFn = (xs: Float64Array[]) => Float64Array;

export interface OpCase {
  name: string;
  shapes: number[][];
  /** our op */
  forward: (ts: Tensor[]) => Tensor;
  /** the float64 reference, flat in and out */
  ref: RefFn;
  /** inputs to check gradients for (default: all) */
  grad?: number[];
  /** how to draw input i (default uniform [-1, 1)) */
  draw?: (i: number, rng: Rng, n: number) => Float64Array;
  fwdTol?: number;
  bwdTol?: number;
  /** finite-difference probes per input (random subset for large inputs) */
  probes?: number;
}

export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-12);
}

export function randArray(rng: Rng, n: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.range(lo, hi);
  return a;
}

/**
 * The elements a gradient check probes: all of them when there are at most `probes`, else
 * `probes` distinct ones drawn at random (without replacement: a partial Fisher-Yates shuffle),
 * so that every probe checks another element.
 */
export function probeIndices(size: number, probes: number, rng: Rng): number[] {
  const all = [...Array(size).keys()];
  if (size <= probes) return all;
  for (let k = 0; k < probes; k++) {
    const j = k + rng.int(size - k);
    [all[k], all[j]] = [all[j], all[k]];
  }
  return all.slice(0, probes);
}

export function checkOp(t: ExecutionContext, c: OpCase, seed = 1): void {
  const rng = new Rng(seed);
  const sizes = c.shapes.map((s) => s.reduce((a, b) => a * b, 1));
  // Inputs rounded to float32 once, so the reference sees exactly what our op sees.
  const xs = sizes.map((n, i) => Float64Array.from(Float32Array.from(c.draw ? c.draw(i, rng, n) : randArray(rng, n))));
  const ref = c.ref(xs);
  const R = randArray(rng, ref.length);
  tidy(() => {
    const ins = xs.map((x, i) => {
      const tt = Tensor.from(Float32Array.from(x), c.shapes[i]);
      tt.requiresGrad = (c.grad ?? xs.map((_, j) => j)).includes(i);
      return tt;
    });
    const out = c.forward(ins);
    const got = out.toArray();
    t.is(got.length, ref.length, `${c.name}: output size`);
    const fe = relErr(got, ref);
    t.true(fe < (c.fwdTol ?? 2e-5), `${c.name} ${JSON.stringify(c.shapes)}: forward rel err ${fe.toExponential(2)}`);
    if (c.grad && c.grad.length === 0) return;
    const loss = ops_sumProduct(out, R);
    backward(loss);
    const L = (ys: Float64Array): number => ys.reduce((s, y, i) => s + y * R[i], 0);
    for (const i of c.grad ?? xs.map((_, j) => j)) {
      const g = ins[i].grad?.toArray() ?? new Float32Array(sizes[i]);
      const idx = probeIndices(sizes[i], c.probes ?? 64, rng);
      const num: number[] = [];
      const ana: number[] = [];
      for (const j of idx) {
        const h = 1e-5 * Math.max(1, Math.abs(xs[i][j]));
        const xp = xs.map((x) => x.slice());
        const xm = xs.map((x) => x.slice());
        xp[i][j] += h;
        xm[i][j] -= h;
        num.push((L(c.ref(xp)) - L(c.ref(xm))) / (2 * h));
        ana.push(g[j]);
      }
      const be = relErr(ana, num);
      t.true(be < (c.bwdTol ?? 1e-4), `${c.name} ${JSON.stringify(c.shapes)}: grad of input ${i} rel err ${be.toExponential(2)}`);
    }
  });
}

import { mul } from '../../lib/ops/elementwise';
import { sumAll } from '../../lib/ops/reduce';
function ops_sumProduct(out: Tensor, R: Float64Array): Tensor {
  return sumAll(mul(out, Tensor.from(Float32Array.from(R), out.shape)));
}
