/**
 * The BF16 GEMM checks of test/unit/bf16.test.ts on PSTAL_GEMM_BF16=emulate (an AVX2 micro-kernel that
 * computes what vdpbf16ps computes): the packing into k-pair words, the rounding, the edges and the
 * dispatch are the real kernel's, so they are tested on any AVX2 CPU.
 */
import test from 'ava';
process.env.PSTAL_GEMM_BF16 = 'emulate'; // before the addon first picks its bf16 kernel
import { bf16Supported, setGemmPrecision, cpu } from '../../lib/runtime/native';
import { gemmCases, opsCases, trainingCase } from '../helpers/bf16';

const maybe = bf16Supported() ? test : test.skip; // the emulation needs AVX2 + FMA

maybe('emulated bf16 GEMM: every transposition and edge against float64', (t) => {
  setGemmPrecision('bf16');
  t.is(cpu().gemm_info().kernel, 'avx2-bf16-emulated');
  setGemmPrecision('fp32');
  t.not(cpu().gemm_info().kernel, 'avx2-bf16-emulated', 'fp32 again: the float32 kernel');
  gemmCases(t);
});
maybe('emulated bf16 conv1d near fp32; fp32 again bit-identical', opsCases);
maybe('emulated bf16 training: a tiny stage-1 model, the loss goes down', trainingCase);
