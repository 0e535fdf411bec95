import test from 'ava';
import { cpu } from '../lib/runtime/native';

test('the CPU addon loads and reports its GEMM kernel', (t) => {
  const info = cpu().gemm_info();
  t.true(['avx512', 'avx2', 'generic'].includes(info.kernel));
  t.true(info.threads >= 1);
});
