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
import { Tensor, needsGrad, shapeStr } from '../tensor/tensor';
import { sameDevice } from './elementwise';

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

function gemm(a: Tensor, b: Tensor, ta: boolean, tb: boolean, g: Geometry, out: Tensor): void {
  backend(a.device).matmul_forward(out.buffer, a.buffer, b.buffer, g.batch, g.M, g.N, g.K, ta, tb, g.strideA, g.strideB);
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
  return record('matmul', out, [a, b], (g) => {
    const gg = g.reshape([g0.batch, g0.M, g0.N]);
    const a3 = aa.reshape([g0.batch, ...(ta ? [g0.K, g0.M] : [g0.M, g0.K])]);
    // dA = dC op(B)^T  (stored as op(A)'s transpose layout when ta)
    let da: Tensor | null = null;
    if (needA) {
      da = Tensor.empty(a.shape, a.device);
      if (!ta) gemm(gg, b, false, !tb, { ...g0, K: g0.N, N: g0.K, strideA: g0.M * g0.N }, da);
      else gemm(b, gg, tb, true, { ...g0, M: g0.K, N: g0.M, K: g0.N, strideA: g0.strideB, strideB: g0.M * g0.N }, da);
    }
    // dB = op(A)^T dC, stored as dC^T op(A) when tb (b is a single matrix when shared: batch is 1)
    let db: Tensor | null = null;
    if (needB) {
      db = Tensor.empty(b.shape, b.device);
      if (!tb) gemm(a3, gg, !ta, false, { ...g0, M: g0.K, N: g0.N, K: g0.M, strideA: g0.M * g0.K, strideB: g0.M * g0.N }, db);
      else gemm(gg, a3, true, ta, { ...g0, M: g0.N, N: g0.K, K: g0.M, strideA: g0.M * g0.N, strideB: g0.M * g0.K }, db);
    }
    return [da, db];
  });
}
