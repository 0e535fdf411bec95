/**
 * The launch counter (native/common/counters.h): every native call is counted per op, a reset
 * clears the counts, and the counter's own ops are not counted.
 */
import test from 'ava';
import { callCounts, resetCallCounts } from '../../lib/runtime/backend';
import { Tensor } from '../../lib/tensor/tensor';
import * as ops from '../../lib/ops';

test('callCounts counts native calls per op, and resetCallCounts clears them', (t) => {
  const a = Tensor.from([1, 2, 3, 4], [2, 2]);
  const b = Tensor.from([5, 6], [2]);
  resetCallCounts();
  const c0 = callCounts();
  t.is(c0.totalCalls, 0);
  t.deepEqual(c0.calls, {});
  const s = ops.add(a, b);
  ops.add(s, b);
  ops.relu(s);
  const c1 = callCounts();
  t.is(c1.calls.binary_forward, 2);
  t.is(c1.calls.unary_forward, 1);
  t.is(c1.totalCalls, 3);
  t.is(c1.totalLaunches, 0); // the CPU backend launches no device kernels
  t.false('call_counts' in c1.calls);
  resetCallCounts();
  t.is(callCounts().totalCalls, 0);
  ops.relu(s);
  t.deepEqual(callCounts().calls, { unary_forward: 1 });
});

test('callCounts rejects an unknown device', (t) => {
  t.throws(() => callCounts('tpu' as never), { message: /device/ });
});
