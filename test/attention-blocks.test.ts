/**
 * The CPU attention in more than one block of query rows (native/cpu/attention.cc query_block),
 * which real inputs reach only past ~1,000 snippets. A small block budget (read once per process,
 * hence its own test file) makes L = 200 run as 192 rows, then 8: the second block's dropout mask
 * bits (marked in the saved weights' signs), its part of dK and dV (accumulated with beta = 1) and
 * the backward's four-row groups with a remainder are checked against the float64 reference.
 */
process.env.PSTAL_ATTENTION_BLOCK = String(200 * 192);
import test from 'ava';
import * as ops from '../lib/ops';
import { checkOp } from './helpers/gradcheck';
import * as R from './helpers/ref';

for (const p of [0, 0.25])
  test(`attention over two query blocks (L = 200, p = ${p}): output and gradients against the float64 reference`, (t) =>
    checkOp(t, {
      name: 'attention', shapes: [[200, 8], [200, 8], [200, 8]], probes: 12,
      forward: ([q, k, v]) => ops.scaledDotProductAttention(q, k, v, 2, p, 9),
      ref: ([q, k, v]) => R.attentionRef(q, k, v, 200, 8, 2, p, 9), bwdTol: 2e-4,
    }));
