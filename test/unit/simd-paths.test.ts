/**
 * Every vector path of the CPU kernels gives the same bits: test/helpers/simd-probe.js run under
 * each PSTAL_SIMD level this CPU allows (a fresh process each), its hashes compared exactly. AVX-512
 * and AVX2 agree on everything, GEMMs included (the same FMA chain per element); the portable
 * build's GEMM rounds each product on its own (no FMA), so against it only the other kernels are
 * compared. And the GEMM's two ways of reading A (packed, or in place for one or two column panels)
 * agree bit for bit.
 */
import test from 'ava';
import { execFileSync } from 'child_process';
import * as path from 'path';
import { cpu, cpuAddonFile } from '../../lib/runtime/native';

const probe = (level: string, gemm: boolean): Record<string, string> =>
  JSON.parse(
    execFileSync(process.execPath, [path.join(__dirname, '../helpers/simd-probe.js'), cpuAddonFile(), ...(gemm ? ['--gemm'] : [])], {
      env: { ...process.env, PSTAL_SIMD: level },
      encoding: 'utf8',
    }),
  );

const top = cpu().gemm_info().simd ?? 'generic';
const levels = ['generic', 'avx2', 'avx512'];
const has = (level: string): boolean => levels.indexOf(top) >= levels.indexOf(level);

const compare = (t: import('ava').ExecutionContext, a: Record<string, string>, b: Record<string, string>, what: string): void => {
  const keys = Object.keys(a).filter((k) => k !== 'simd');
  t.true(keys.length > 10, 'the probe ran its kernels');
  t.deepEqual(Object.keys(b).filter((k) => k !== 'simd'), keys);
  for (const k of keys) t.is(b[k], a[k], `${k}: ${what}`);
};

test('PSTAL_SIMD caps the level the kernels report', (t) => {
  t.is(probe('generic', false).simd, 'generic');
  t.is(probe('avx2', false).simd, has('avx2') ? 'avx2' : 'generic');
});

(has('avx512') ? test : test.skip)('AVX-512 and AVX2 paths give the same bits (softmax, max, attention, GEMM)', (t) => {
  compare(t, probe('avx2', true), probe('avx512', true), 'AVX-512 against AVX2');
});

(has('avx2') ? test : test.skip)('AVX2 and portable paths give the same bits (softmax, max)', (t) => {
  compare(t, probe('generic', false), probe('avx2', false), 'AVX2 against the portable loops');
});

test('a GEMM reading A in place (one or two column panels) equals the packed one bit for bit', (t) => {
  const B = cpu();
  let s = 7;
  const rnd = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) / 8388608 - 1);
  const wide = 160; // more column panels than any kernel reads A in place for
  for (const [M, N, K] of [[13, 32, 400], [130, 21, 200], [37, 64, 9], [8, 1, 3]])
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const a = new B.NativeBuffer(rnd(M * K));
        const bw = rnd(K * wide); // op(B) [K, wide]; its first N columns are the narrow B
        const bn = new Float32Array(K * N);
        for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) bn[tb ? j * K + k : k * N + j] = bw[tb ? j * K + k : k * wide + j];
        const c0 = rnd(M * wide);
        const cw = new B.NativeBuffer(c0);
        const cn = new B.NativeBuffer(Float32Array.from({ length: M * N }, (_, i) => c0[Math.floor(i / N) * wide + (i % N)]));
        B.matmul_forward(cw, a, new B.NativeBuffer(bw), 1, M, wide, K, ta, tb, 0, 0, 0.5);
        B.matmul_forward(cn, a, new B.NativeBuffer(bn), 1, M, N, K, ta, tb, 0, 0, 0.5);
        const w = cw.read(), n = cn.read();
        let same = true;
        for (let i = 0; i < M && same; i++) for (let j = 0; j < N; j++) if (!Object.is(w[i * wide + j], n[i * N + j])) same = false;
        t.true(same, `${M}x${N}x${K} ta=${ta} tb=${tb}`);
      }
});
