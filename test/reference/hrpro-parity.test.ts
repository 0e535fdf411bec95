/**
 * Stage-1 checkpoint parity with PyTorch: weights written under PyTorch's names by our own PyTorch
 * implementation (scripts/make-stage1-parity.py, checked there against the reference's S_Model),
 * loaded by name into Stage1Model, must reproduce PyTorch's eval-mode outputs.
 */
import test from 'ava';
import * as path from 'path';
import { loadSafetensors } from '../../lib/io/safetensors';
import { Stage1Model } from '../../lib/models/hrpro/stage1';
import { Tensor, tidy, noGrad } from '../../lib/tensor/tensor';
import { Rng } from '../../lib/util/rng';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'hrpro', 'stage1_parity.safetensors');

/** max |a - b| / (|b| + atol / rtol): below 1e-4 means allclose(rtol = 1e-4, atol = 1e-6) */
function maxRelErr(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + 1e-2));
  return worst;
}

for (const reshape of [true, false]) {
  test(`stage 1 loads PyTorch weights by name and reproduces its outputs (prototype reshape ${reshape ? 'on' : 'off'})`, (t) => {
    const f = loadSafetensors(FIXTURE);
    const D = Number(f.metadata.D);
    const C = Number(f.metadata.C);
    const T = Number(f.metadata.T);
    const model = new Stage1Model(
      { featureDim: D, numClasses: C, prototypeReshape: reshape, rab: { heads: Number(f.metadata.heads), feedForward: Number(f.metadata.ffn), dropout: 0.3, attentionDropout: 0.1 } },
      new Rng(99),
    );
    const weights = new Map([...f.tensors].filter(([k]) => !/^(input|reshape|tokens)\./.test(k)));
    model.loadStateDict(weights);
    model.eval();
    const prefix = reshape ? 'reshape' : 'tokens';
    const x = f.tensors.get('input.features')!.data;
    const labels = f.tensors.get('input.labels')!.data;
    noGrad(() =>
      tidy(() => {
        const out = model.forward(Tensor.from(x, [T, D]));
        t.true(maxRelErr(out.casFuse.toArray(), f.tensors.get(`${prefix}.cas_fuse`)!.data) < 1e-4, 'cas_fuse');
        t.true(maxRelErr(out.vidScore.toArray(), f.tensors.get(`${prefix}.vid_score`)!.data) < 1e-4, 'vid_score');
        t.true(maxRelErr(out.embedded.toArray(), f.tensors.get(`${prefix}.embedded`)!.data) < 1e-4, 'embedded');
        const labeled = model.forward(Tensor.from(x, [T, D]), labels);
        t.true(maxRelErr(labeled.vidScore.toArray(), f.tensors.get(`${prefix}.vid_score_labeled`)!.data) < 1e-4, 'vid_score with labels');
      }),
    );
    model.dispose();
  });
}

test('the fixture two token layouts differ, so the reshape option is really exercised', (t) => {
  const f = loadSafetensors(FIXTURE);
  t.true(maxRelErr(f.tensors.get('reshape.cas_fuse')!.data, f.tensors.get('tokens.cas_fuse')!.data) > 1e-3);
});

test('a checkpoint with a renamed parameter is refused with the names that differ', (t) => {
  const f = loadSafetensors(FIXTURE);
  const model = new Stage1Model({ featureDim: 64, numClasses: 5, rab: { heads: 8, feedForward: 16, dropout: 0.3, attentionDropout: 0.1 } }, new Rng(1));
  const weights = new Map([...f.tensors].filter(([k]) => !/^(input|reshape|tokens)\./.test(k)));
  const w = weights.get('encoder.RAB.1.linear1.weight')!;
  weights.delete('encoder.RAB.1.linear1.weight');
  weights.set('encoder.RAB.1.linear_1.weight', w);
  const e = t.throws(() => model.loadStateDict(weights));
  t.regex(e!.message, /missing from the checkpoint: encoder\.RAB\.1\.linear1\.weight/);
  t.regex(e!.message, /not in the model: encoder\.RAB\.1\.linear_1\.weight/);
  model.dispose();
});
