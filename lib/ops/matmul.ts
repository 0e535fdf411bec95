/**
 * matmul.ts: matrix products on the native GEMM (native/ops/matmul.h; kernels native/cpu/matmul.cc, native/cuda/matmul.cu).
 *
 *   matmul(a [.., M, K], b [K, N])          one weight shared by every leading index
 *   matmul(a [B, M, K], b [B, K, N])        batched
 *   options.transA / transB use the operand transposed without copying it.
 * Backward: dA = dC op(B)^T, dB = op(A)^T dC (with the transposes folded into the GEMM flags).
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { ADDED, Tensor, needsGrad, shapeStr } from '../tensor/tensor';
import { checkDropoutP, sameDevice } from './elementwise';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

interface Geometry {
  batch: number;
  M: number;
  N: number;
  K: number;
  strideA: number;
  strideB: number;
  outShape: number[];
  /** b is one matrix shared over a's batch */
  sharedB: boolean;
}

function geometry(a: Tensor, b: Tensor, ta: boolean, tb: boolean): Geometry {
  const fail = (why: string): never => {
    throw new Error(`matmul: ${why} (a ${shapeStr(a.shape)}${ta ? '^T' : ''}, b ${shapeStr(b.shape)}${tb ? '^T' : ''})`);
  };
  if (a.ndim < 2 || b.ndim < 2) fail('both operands need at least 2 dimensions');
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = ta ? ac : ar;
  const K = ta ? ar : ac;
  const Kb = tb ? bc : br;
  const N = tb ? br : bc;
  if (K !== Kb) fail(`inner dimensions differ (${K} vs ${Kb})`);
  const lead = a.shape.slice(0, -2);
  const batch = lead.reduce((x, y) => x * y, 1);
  let sharedB = true;
  if (b.ndim > 2) {
    const blead = b.shape.slice(0, -2);
    if (blead.length !== lead.length || blead.some((d, i) => d !== lead[i])) fail('batch dimensions differ');
    sharedB = false;
  } else if (ta && lead.length) fail('a transposed with a shared b needs a 2-D a');
  return { batch, M, N, K, strideA: M * K, strideB: sharedB ? 0 : K * N, outShape: [...lead, M, N], sharedB };
}

/** out = the product, or out += it (accumulate: the product summed whole, then added). */
function gemm(a: Tensor, b: Tensor, ta: boolean, tb: boolean, g: Geometry, out: Tensor, accumulate = false): void {
  backend(a.device).matmul_forward(out.buffer, a.buffer, b.buffer, g.batch, g.M, g.N, g.K, ta, tb, g.strideA, g.strideB, 0, accumulate);
}

export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  sameDevice('matmul', a, b);
  const ta = !!options.transA;
  const tb = !!options.transB;
  let geo = geometry(a, b, ta, tb);
  // A shared b with leading dims on a: fold them into M (one big GEMM instead of many).
  let aa = a;
  if (geo.sharedB && geo.batch > 1) {
    aa = a.reshape([geo.batch * geo.M, geo.K]);
    geo = { ...geo, M: geo.batch * geo.M, batch: 1, strideA: 0 };
  }
  // every product writes its whole output (beta = 0; K = 0 writes zeros): no fill pass
  const out = Tensor.empty(geo.outShape, a.device);
  gemm(aa, b, ta, tb, geo, out);
  const g0 = geo;
  // only the gradients an input needs (a constant operand, e.g. detached prototypes, needs none)
  const [needA, needB] = [needsGrad(a), needsGrad(b)];
  return record('matmul', out, [a, b], (g, into) => {
    const gg = g.reshape([g0.batch, g0.M, g0.N]);
    const a3 = aa.reshape([g0.batch, ...(ta ? [g0.K, g0.M] : [g0.M, g0.K])]);
    // each gradient goes into autograd's running sum where it offers one (the GEMM's accumulate)
    const [intoA, intoB] = [into?.[0] ?? null, into?.[1] ?? null];
    // dA = dC op(B)^T  (stored as op(A)'s transpose layout when ta)
    let da: Tensor | null = null;
    if (needA) {
      da = intoA ?? Tensor.empty(a.shape, a.device);
      if (!ta) gemm(gg, b, false, !tb, { ...g0, K: g0.N, N: g0.K, strideA: g0.M * g0.N }, da, !!intoA);
      else gemm(b, gg, tb, true, { ...g0, M: g0.K, N: g0.M, K: g0.N, strideA: g0.strideB, strideB: g0.M * g0.N }, da, !!intoA);
    }
    // dB = op(A)^T dC, stored as dC^T op(A) when tb (b is a single matrix when shared: batch is 1)
    let db: Tensor | null = null;
    if (needB) {
      db = intoB ?? Tensor.empty(b.shape, b.device);
      if (!tb) gemm(a3, gg, !ta, false, { ...g0, M: g0.K, N: g0.N, K: g0.M, strideA: g0.M * g0.K, strideB: g0.M * g0.N }, db, !!intoB);
      else gemm(gg, a3, true, ta, { ...g0, M: g0.N, N: g0.K, K: g0.M, strideA: g0.M * g0.N, strideB: g0.M * g0.K }, db, !!intoB);
    }
    return [da && intoA ? ADDED : da, db && intoB ? ADDED : db];
  });
}

/** linear's options: a relu, then a dropout (its p and the seed of its mask), after the bias. */
export interface LinearOptions {
  relu?: boolean;
  dropout?: { p: number; seed: number } | null;
}

/**
 * x [..., K] -> x w^T + bias [..., N] with w [N, K], bias [N] (or none), then relu when
 * options.relu, then dropout when options.dropout: lib/nn's Linear (and a Linear followed by ReLU
 * and Dropout) in one native call forward and one backward, the values bit for bit those of
 * matmul(x, w, {transB: true}), add(., bias), relu(.), dropout(., p, true, seed).
 * The backward adds dw and db straight into the parameters' .grad where autograd offers it.
 */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null, options: LinearOptions = {}): Tensor {
  sameDevice('linear', x, w, ...(bias ? [bias] : []));
  if (x.ndim < 1 || w.ndim !== 2 || x.shape[x.ndim - 1] !== w.shape[1])
    throw new Error(`linear: expected x [..., K] and weight [N, K], received ${shapeStr(x.shape)} and ${shapeStr(w.shape)}`);
  const [N, K] = w.shape;
  if (bias && (bias.ndim !== 1 || bias.size !== N)) throw new Error(`linear: bias ${shapeStr(bias.shape)} must be [${N}] for weight ${shapeStr(w.shape)}`);
  const M = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
  const relu = !!options.relu;
  const p = options.dropout?.p ?? 0;
  const seed = options.dropout?.seed ?? 0;
  checkDropoutP('linear', p);
  const B = backend(x.device);
  const out = Tensor.empty([...x.shape.slice(0, -1), N], x.device); // written whole
  B.linear_forward(out.buffer, x.buffer, w.buffer, bias?.buffer ?? null, M, N, K, relu, p, seed);
  const inputs = bias ? [x, w, bias] : [x, w];
  const need = inputs.map(needsGrad);
  return record(`linear${relu ? '+relu' : ''}${p > 0 ? '+dropout' : ''}`, out, inputs, (g, into) => {
    const grads = inputs.map((t, i) => (need[i] ? into?.[i] ?? Tensor.empty(t.shape, t.device) : null));
    const acc = inputs.map((_, i) => need[i] && !!into?.[i]);
    B.linear_backward(grads[0]?.buffer ?? null, grads[1]?.buffer ?? null, grads[2]?.buffer ?? null, g.buffer, x.buffer, w.buffer,
      relu ? out.buffer : null, M, N, K, acc[0], acc[1], !!acc[2], p, seed);
    return grads.map((d, i) => (acc[i] ? ADDED : d));
  });
}
