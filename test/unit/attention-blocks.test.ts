/**
 * The CPU attention in more than one block of query rows (native/cpu/attention.cc query_block),
 * which real inputs reach only past ~1,000 snippets. A small block budget (read once per process,
 * hence its own test file) makes L = 200 run as 192 rows, then 8: the second block's dropout mask
 * bits (marked in the saved weights' signs), its part of dK and dV (accumulated with beta = 1) and
 * the backward's four-row groups with a remainder are checked against the float64 reference.
 */
process.env.PSTAL_ATTENTION_BLOCK = String(200 * 192);
import test from 'ava';
import * as ops from '../../lib/ops';
import { Tensor, tidy } from '../../lib/tensor/tensor';
import { backward } from '../../lib/tensor/autograd';
import { Rng } from '../../lib/util/rng';
import { checkOp } from '../helpers/gradcheck';
import * as R from '../helpers/ref';

for (const p of [0, 0.25])
  test(`attention over two query blocks (L = 200, p = ${p}): output and gradients against the float64 reference`, (t) =>
    checkOp(t, {
      name: 'attention', shapes: [[200, 8], [200, 8], [200, 8]], probes: 12,
      forward: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, 2, p, 9),
      ref: ([q, k, v]) => R.attentionRef(q, k, v, 200, 8, 2, p, 9), bwdTol: 2e-4,
    }));

// Fewer queries than keys (the last RAB computes only the snippets' rows): the first Lq rows of the
// Lq = L result, bit for bit, in one block (Lq = 50) and across the two blocks (192: the first block
// exactly; 197: into the second); with an upstream gradient that is zero on the rows left out, the
// key and value gradients are the full run's exactly (those rows only added zeros to their sums).
for (const Lq of [50, 192, 197])
  test(`attention with Lq = ${Lq} of L = 200 queries: the first rows of the full result and the same gradients, bit for bit`, (t) => {
    const L = 200, D = 8, H = 2, p = 0.25, seed = 9;
    const rng = new Rng(Lq);
    const [q, k, v] = [0, 1, 2].map(() => rng.uniformArray(L * D, -1, 1));
    const g = rng.uniformArray(L * D, -1, 1).fill(0, Lq * D);
    const run = (rows: number): { out: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array } =>
      tidy(() => {
        const [tq, tk, tv] = [q.subarray(0, rows * D), k, v].map((a, i) => Tensor.from(a, [i ? L : rows, D]));
        for (const x of [tq, tk, tv]) x.requiresGrad = true;
        const out = ops.scaledDotProductAttention(tq, tk, tv, H, p, seed);
        backward(out, Tensor.from(g.subarray(0, rows * D), [rows, D]));
        return { out: out.toArray(), dq: tq.grad!.toArray(), dk: tk.grad!.toArray(), dv: tv.grad!.toArray() };
      });
    const full = run(L);
    const part = run(Lq);
    t.deepEqual(part.out, full.out.slice(0, Lq * D), 'output');
    t.deepEqual(part.dq, full.dq.slice(0, Lq * D), 'dq');
    t.deepEqual(part.dk, full.dk, 'dk');
    t.deepEqual(part.dv, full.dv, 'dv');
    t.true(part.out.some((x) => x !== 0) && part.dk.some((x) => x !== 0), 'not all zeros');
  });

test('attention rejects more queries than keys, naming the shapes', (t) => {
  const [q, k] = [Tensor.zeros([5, 4]), Tensor.zeros([4, 4])];
  t.throws(() => ops.scaledDotProductAttention(q, k, k, 2), { message: /Lq <= L; received \[5, 4\], \[4, 4\], \[4, 4\]/ });
});
