/**
 * BF16 GEMM on the real AVX512-BF16 kernel (vdpbf16ps): against float64, in conv1d, and a tiny
 * stage-1 training run whose loss goes down. On a CPU without AVX512-BF16 these skip, and the
 * error that setGemmPrecision('bf16') throws there is checked instead. test/unit/bf16-emulated.test.ts
 * runs the same checks on the emulation, on any AVX2 CPU.
 */
import test from 'ava';
import { bf16Supported, setGemmPrecision, getGemmPrecision, cpu } from '../../lib/runtime/native';
import { gemmCases, opsCases, trainingCase } from '../helpers/bf16';
import { CliError } from '../../lib/cli/args';
import { applyPrecision } from '../../lib/cli/options';

delete process.env.PSTAL_GEMM_BF16; // the real kernel only (read once, when the addon first picks it)
const real = bf16Supported();
const maybe = real ? test : test.skip;

test('fp32 is the default precision', (t) => {
  t.is(getGemmPrecision(), 'fp32');
  t.is(cpu().gemm_info().precision, 'fp32');
});

test('bf16 on a CPU without AVX512-BF16: one clear error, and the precision stays fp32', (t) => {
  if (real) return t.pass('this CPU has AVX512-BF16');
  t.throws(() => setGemmPrecision('bf16'), { message: /^setGemmPrecision: bf16 GEMM needs a CPU with AVX512-BF16/ });
  t.is(getGemmPrecision(), 'fp32');
});

test('setGemmPrecision checks its argument', (t) => {
  t.throws(() => setGemmPrecision('fp16' as 'fp32'), { message: /^setGemmPrecision: expected 'fp32' or 'bf16' for precision but received "fp16"/ });
});

maybe('bf16 GEMM (avx512-bf16): every transposition and edge against float64', (t) => {
  setGemmPrecision('bf16');
  t.is(cpu().gemm_info().kernel, 'avx512-bf16');
  setGemmPrecision('fp32');
  gemmCases(t);
});
maybe('bf16 conv1d near fp32; fp32 again bit-identical', opsCases);
maybe('bf16 training: a tiny stage-1 model, the loss goes down', trainingCase);

test('--precision (train, run, test, detect): usage errors name the option', (t) => {
  t.throws(() => applyPrecision('bf17'), { instanceOf: CliError, message: "--precision must be 'fp32' or 'bf16', received 'bf17'" });
  t.throws(() => applyPrecision('bf16', 'cuda'), { instanceOf: CliError, message: /--precision bf16 is for --device cpu/ });
  t.notThrows(() => applyPrecision('fp32'));
  if (real) return;
  t.throws(() => applyPrecision('bf16'), { instanceOf: CliError, message: /^--precision bf16: bf16 GEMM needs a CPU with AVX512-BF16/ });
  t.is(getGemmPrecision(), 'fp32');
});
