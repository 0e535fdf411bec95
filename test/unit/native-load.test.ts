import test from 'ava';
import { cpu } from '../../lib/runtime/native';

test('the CPU addon loads and reports its GEMM kernel', (t) => {
  const info = cpu().gemm_info();
  t.true(['avx512', 'avx2', 'generic'].includes(info.kernel));
  t.true(info.threads >= 1);
});

test('changing the thread count after parallel work keeps the pool usable (regression: stale job)', (t) => {
  // A worker started by set_num_threads used to take the last finished job for a new one and
  // crash the process; the GEMM below runs on every thread before and after each resize.
  const { setNumThreads, getNumThreads } = require('../../lib/runtime/native');
  const B = cpu();
  const n = 96;
  const a = new B.NativeBuffer(Float32Array.from({ length: n * n }, (_, i) => (i % 7) - 3));
  const c = new B.NativeBuffer(n * n);
  const product = (): Float32Array => {
    B.matmul_forward(c, a, a, 1, n, n, n, false, false, 0, 0);
    return c.read();
  };
  const before = product();
  const threads = getNumThreads();
  for (const k of [threads, 3, 1, threads]) {
    setNumThreads(k);
    t.is(getNumThreads(), k);
    t.deepEqual(product(), before);
  }
  a.dispose();
  c.dispose();
});
