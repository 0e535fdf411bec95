#!/usr/bin/env python3
"""
make-torch-checkpoint-fixture.py: PyTorch checkpoints for the `pstal import` tests
(test/e2e/torch-import.test.ts), written with torch.save exactly as a user's training script writes
them, and the values they must import to, written beside them as safetensors (float32, C order).

  test/fixtures/torch/stage1.pt             torch.save(OrderedDict state dict) of an HR-Pro S_Model
                                            under the reference's names (SPEC §8), D = 16, C = 20
                                            (THUMOS14's class count), FFN 32, 2 RABs
  test/fixtures/torch/stage2.pt             torch.save({'epoch': 7, 'model': I_Model state dict,
                                            'args': {...}}) -- a wrapped state dict, D = 16
  test/fixtures/torch/stage2_missing.pt     stage 2 with bcr.end_reg_conv.2.bias left out and an
                                            unknown key bcr.extra.weight added
  test/fixtures/torch/stage2_legacy.pt      stage 2 saved with _use_new_zipfile_serialization=False
  test/fixtures/torch/stage{1,2}_expected.safetensors   every tensor as float32, contiguous

The state dicts exercise what a reader can get wrong:
  - a transposed view saved as is (non-contiguous strides): encoder.RAB.0.self_atten.out_proj.weight
  - two tensors that are views of one storage at different offsets: encoder.RAB.1.self_atten
    in_proj_weight (offset 0) and in_proj_bias (offset 3D*D); a slice with a storage offset and
    a stride of 2: encoder.RAB.0.norm2.weight
  - a float64 tensor (encoder.RAB.1.linear1.weight), a float16 one (encoder.RAB.0.norm1.bias) and a
    bfloat16 one (bcr.prop_fusion.0.bias); their float32 conversion is torch's own `.float()`
  - memory.proto_vectors [C, 1, D] and classifier.1.weight [C + 1, D, 1] (no bias)

Regenerate (needs only torch; Debian: apt install python3-torch):
  /usr/bin/python3 scripts/make-torch-checkpoint-fixture.py
Optionally check the fixtures' names and shapes against the reference's own S_Model and I_Model
(read at run time from a clone or bare mirror of github.com/pipixin321/HR-Pro, never copied here)
and write those models' freshly initialised state dicts as the reference's training saves them
(model1_seed_0.pkl, model2_seed_0.pkl) into DIR, for `pstal import` by hand:
  /usr/bin/python3 scripts/make-torch-checkpoint-fixture.py --reference REPO --reference-out DIR
"""
import argparse
import collections
import json
import os
import struct
import sys
import tempfile
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_support import copy_files  # noqa: E402

D, C, FFN, LAYERS = 16, 20, 32, 2
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'torch')

g = torch.Generator().manual_seed(20261126)


def rnd(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def stage1_state():
    sd = collections.OrderedDict()
    sd['memory.proto_vectors'] = rnd(C, 1, D)
    for i in range(LAYERS):
        p = f'encoder.RAB.{i}.'
        for conv in ('conv_query', 'conv_key', 'conv_value'):
            sd[p + conv + '.weight'] = rnd(D, D, 1)
            sd[p + conv + '.bias'] = rnd(D)
        if i == 1:
            base = rnd(3 * D * D + 3 * D)  # one storage, two views at different offsets
            sd[p + 'self_atten.in_proj_weight'] = base[: 3 * D * D].view(3 * D, D)
            sd[p + 'self_atten.in_proj_bias'] = base[3 * D * D:]
        else:
            sd[p + 'self_atten.in_proj_weight'] = rnd(3 * D, D)
            sd[p + 'self_atten.in_proj_bias'] = rnd(3 * D)
        # a transposed view: strides (1, D), saved without .contiguous()
        sd[p + 'self_atten.out_proj.weight'] = rnd(D, D).t() if i == 0 else rnd(D, D)
        sd[p + 'self_atten.out_proj.bias'] = rnd(D)
        sd[p + 'linear1.weight'] = rnd(FFN, D, dtype=torch.float64 if i == 1 else torch.float32)
        sd[p + 'linear1.bias'] = rnd(FFN)
        sd[p + 'linear2.weight'] = rnd(D, FFN)
        sd[p + 'linear2.bias'] = rnd(D)
        sd[p + 'norm1.weight'] = rnd(D)
        sd[p + 'norm1.bias'] = rnd(D, dtype=torch.float16 if i == 0 else torch.float32)
        # a strided slice with a storage offset: elements 3, 5, 7, ... of a longer vector
        sd[p + 'norm2.weight'] = rnd(2 * D + 5)[3: 3 + 2 * D: 2] if i == 0 else rnd(D)
        sd[p + 'norm2.bias'] = rnd(D)
    sd['encoder.feature_embedding.0.weight'] = rnd(D, D, 3)
    sd['encoder.feature_embedding.0.bias'] = rnd(D)
    sd['classifier.1.weight'] = rnd(C + 1, D, 1)
    return sd


def stage2_state():
    sd = collections.OrderedDict()
    for head in ('start_reg_conv', 'end_reg_conv'):
        sd[f'bcr.{head}.0.weight'] = rnd(D // 2, D, 1)
        sd[f'bcr.{head}.0.bias'] = rnd(D // 2)
        sd[f'bcr.{head}.2.weight'] = rnd(1, D // 2, 1)
        sd[f'bcr.{head}.2.bias'] = rnd(1)
    sd['bcr.prop_fusion.0.weight'] = rnd(D, 3 * D)
    sd['bcr.prop_fusion.0.bias'] = rnd(D, dtype=torch.bfloat16)
    sd['bcr.prop_completeness.0.weight'] = rnd(D // 2, D, 1)
    sd['bcr.prop_completeness.0.bias'] = rnd(D // 2)
    sd['bcr.prop_completeness.2.weight'] = rnd(1, D // 2, 1)
    sd['bcr.prop_completeness.2.bias'] = rnd(1)
    return sd


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().float().contiguous()
        data = a.numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    js = json.dumps(header, separators=(',', ':'))
    js += ' ' * (-len(js) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(js)))
        f.write(js.encode())
        for b in blobs:
            f.write(b)


def check_reference(repo, out, s1, s2):
    """The reference's own models: our fixtures load into them strictly; their state dicts saved as its train.py does."""
    with tempfile.TemporaryDirectory() as tmp:
        copy_files(repo, tmp, ['model_S.py', 'model_I.py'])
        sys.modules.setdefault('utils', types.ModuleType('utils'))  # only the losses use it
        sys.path.insert(0, tmp)
        import model_S  # noqa: E402
        import model_I  # noqa: E402
        args = types.SimpleNamespace(feature_dim=D, num_class=C, r_act=8, dropout=0.7, lambdas=[0, 0.5, 1, 1], dataset='THUMOS14',
                                     max_proposal=1000, RAB_args={'drop_out': 0.3, 'num_heads': 8, 'dim_feedforward': FFN, 'layer_num': LAYERS})
        ref1, ref2 = model_S.S_Model(args), model_I.I_Model(args)
        ref1.load_state_dict(s1)  # strict: every name and shape of the fixture is the reference's
        ref2.load_state_dict(s2)
        print(f'reference S_Model ({len(s1)} tensors) and I_Model ({len(s2)} tensors) load the fixtures strictly')
        os.makedirs(out, exist_ok=True)
        torch.manual_seed(0)
        torch.save(model_S.S_Model(args).state_dict(), os.path.join(out, 'model1_seed_0.pkl'))
        torch.save(model_I.I_Model(args).state_dict(), os.path.join(out, 'model2_seed_0.pkl'))
        print(f'reference state dicts: {out}/model1_seed_0.pkl, {out}/model2_seed_0.pkl')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reference', help='a clone or bare mirror of pipixin321/HR-Pro to check the names against')
    p.add_argument('--reference-out', default=os.path.join(tempfile.gettempdir(), 'hrpro-reference-checkpoints'))
    a = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    s1, s2 = stage1_state(), stage2_state()
    assert not s1['encoder.RAB.0.self_atten.out_proj.weight'].is_contiguous()
    assert s1['encoder.RAB.0.norm2.weight'].storage_offset() == 3
    meta = {'generator': 'scripts/make-torch-checkpoint-fixture.py', 'torch': torch.__version__}
    torch.save(s1, os.path.join(OUT, 'stage1.pt'))
    torch.save({'epoch': 7, 'model': s2, 'args': {'lr': 5e-5, 'name': 'fixture'}}, os.path.join(OUT, 'stage2.pt'))
    broken = collections.OrderedDict((k, v) for k, v in s2.items() if k != 'bcr.end_reg_conv.2.bias')
    broken['bcr.extra.weight'] = rnd(2, 2)
    torch.save(broken, os.path.join(OUT, 'stage2_missing.pt'))
    torch.save(s2, os.path.join(OUT, 'stage2_legacy.pt'), _use_new_zipfile_serialization=False)
    write_safetensors(os.path.join(OUT, 'stage1_expected.safetensors'), s1, meta)
    write_safetensors(os.path.join(OUT, 'stage2_expected.safetensors'), s2, meta)
    # the loaded checkpoints must equal what was saved (torch's own round trip)
    back = torch.load(os.path.join(OUT, 'stage1.pt'))
    for k in s1:
        assert torch.equal(back[k], s1[k]) and back[k].stride() == s1[k].stride(), k
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))
    if a.reference:
        check_reference(a.reference, a.reference_out, s1, s2)


if __name__ == '__main__':
    main()
