#!/usr/bin/env python3
"""
make-stage1-parity.py: the PyTorch side of the stage-1 checkpoint parity test
(test/reference/hrpro-parity.test.ts). Our own PyTorch implementation of HR-Pro's stage-1 forward pass,
written from ../shared/SPEC.md sections 2 and 8 (parameter names and layouts as the reference's
S_Model), a seeded random initialisation, a random prototype memory and video, and its eval-mode
outputs, all written to one safetensors file:

  test/fixtures/hrpro/stage1_parity.safetensors
    weights under PyTorch's names (memory.proto_vectors, encoder.RAB.0.conv_query.weight, ...)
    input.features [T, D]; input.labels [C]
    reshape.{cas_fuse, vid_score, vid_score_labeled, embedded}   prototype tokens by the reference's reshape
    tokens.{...}                                                 one token per prototype (our default)

Regenerate (needs only torch; Debian: apt install python3-torch):
  /usr/bin/python3 scripts/make-stage1-parity.py
Optionally also check this module against the reference implementation itself, read at run time
from a local clone or mirror of github.com/pipixin321/HR-Pro (never copied into this project):
  /usr/bin/python3 scripts/make-stage1-parity.py --reference DIR
"""
import argparse
import json
import os
import struct
import sys
import tempfile
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_support import copy_files  # noqa: E402

D, C, T, HEADS, FFN = 64, 5, 13, 8, 16
OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'hrpro', 'stage1_parity.safetensors')


class Memory(nn.Module):
    def __init__(self):
        super().__init__()
        # a buffer under the reference's name: [C, 1, D]
        self.register_buffer('proto_vectors', torch.zeros(C, 1, D))


class RAB(nn.Module):
    """Reliability-aware attention block (SPEC §2): q, k from 1x1 convs, v = raw tokens, post-norm."""

    def __init__(self):
        super().__init__()
        self.conv_query = nn.Conv1d(D, D, 1)
        self.conv_key = nn.Conv1d(D, D, 1)
        self.conv_value = nn.Conv1d(D, D, 1)  # in the checkpoint, unused by the forward pass
        self.self_atten = nn.MultiheadAttention(D, HEADS, dropout=0.1)
        self.linear1 = nn.Linear(D, FFN)
        self.linear2 = nn.Linear(FFN, D)
        self.norm1 = nn.LayerNorm(D)
        self.norm2 = nn.LayerNorm(D)

    def forward(self, x):  # x [N, D] tokens
        xc = x.t().unsqueeze(0)  # [1, D, N] for the convs
        q = self.conv_query(xc)[0].t().unsqueeze(1)  # [N, 1, D] (sequence, batch, dim)
        k = self.conv_key(xc)[0].t().unsqueeze(1)
        v = x.unsqueeze(1)
        a, _ = self.self_atten(q, k, v)
        x = self.norm1(x + a[:, 0])
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.RAB = nn.ModuleList([RAB(), RAB()])
        self.feature_embedding = nn.Sequential(nn.Conv1d(D, D, 3, padding=1), nn.ReLU())


class Stage1(nn.Module):
    def __init__(self):
        super().__init__()
        self.memory = Memory()
        self.encoder = Encoder()
        self.classifier = nn.Sequential(nn.Dropout(0.7), nn.Conv1d(D, C + 1, 1, bias=False))

    def forward(self, x, reshape, labels=None):  # x [T, D]
        m = self.memory.proto_vectors
        # the reference's quirk: the flat [C, 1, D] memory viewed as [D, C], token c = column c
        tokens = m.reshape(D, C).t() if reshape else m.reshape(C, D)
        h = torch.cat([x, tokens], 0)
        for layer in self.encoder.RAB:
            h = layer(h)
        h = h[: x.shape[0]]
        emb = self.encoder.feature_embedding(h.t().unsqueeze(0))  # [1, D, T]
        cas = torch.sigmoid(self.classifier(emb))[0].t()  # [T, C + 1]
        cas_s, bkg = cas[:, :C], cas[:, C:]
        cas_fuse = torch.cat([cas_s * (1 - bkg), bkg], 1)
        k = max(1, x.shape[0] // 8)
        top = cas_s.sort(0, descending=True)[0][:k].mean(0)
        vid = top if labels is None else top * labels + cas_s.mean(0) * (1 - labels)
        return {'cas_fuse': cas_fuse, 'vid_score': vid, 'embedded': emb[0].t()}


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().float().cpu()
        b = t.numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
    os.replace(path + '.tmp', path)


def outputs(model, x, labels):
    out = {}
    with torch.no_grad():
        for prefix, reshape in (('reshape', True), ('tokens', False)):
            o = model(x, reshape)
            out[f'{prefix}.cas_fuse'] = o['cas_fuse']
            out[f'{prefix}.vid_score'] = o['vid_score']
            out[f'{prefix}.embedded'] = o['embedded']
            out[f'{prefix}.vid_score_labeled'] = model(x, reshape, labels)['vid_score']
    return out


def check_reference(repo, model, x, labels, ours):
    """Loads our weights into the reference's own S_Model and compares its outputs to ours."""
    with tempfile.TemporaryDirectory() as tmp:
        copy_files(repo, tmp, ['model_S.py'])
        sys.modules['utils'] = types.ModuleType('utils')  # only the losses use it
        sys.path.insert(0, tmp)
        import model_S  # noqa: E402
        args = types.SimpleNamespace(feature_dim=D, num_class=C, r_act=8, dropout=0.7, lambdas=[0, 0.5, 1, 1], dataset='THUMOS14',
                                     RAB_args={'drop_out': 0.3, 'num_heads': HEADS, 'dim_feedforward': FFN, 'layer_num': 2})
        ref = model_S.S_Model(args)
        ref.load_state_dict(model.state_dict())
        ref.eval()
        with torch.no_grad():
            o = ref(x.unsqueeze(0))
            ol = ref(x.unsqueeze(0), labels.unsqueeze(0))
        pairs = {'cas_fuse': o['cas_fuse'][0], 'vid_score': o['vid_score'][0], 'embedded': o['embedded_feature'][0] if 'embedded_feature' in o else o['embeded_feature'][0],
                 'vid_score_labeled': ol['vid_score'][0]}
        for k, v in pairs.items():
            d = (v - ours[f'reshape.{k}']).abs().max().item()
            print(f'reference S_Model vs ours (reshape on), {k}: max abs diff {d:.3g}')
            assert d < 1e-5, k


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reference', help='a clone or bare mirror of pipixin321/HR-Pro to check against')
    p.add_argument('--out', default=OUT)
    a = p.parse_args()
    torch.manual_seed(0)
    model = Stage1()
    with torch.no_grad():
        model.memory.proto_vectors.normal_(0, 0.5)
        # non-zero attention biases, so their names and layout are exercised too
        for blk in model.encoder.RAB:
            blk.self_atten.in_proj_bias.uniform_(-0.2, 0.2)
            blk.self_atten.out_proj.bias.uniform_(-0.2, 0.2)
            blk.norm1.weight.uniform_(0.5, 1.5)
            blk.norm2.bias.uniform_(-0.1, 0.1)
    model.eval()
    x = torch.rand(T, D) * 2
    labels = torch.tensor([1.0, 0, 1, 0, 0])
    out = outputs(model, x, labels)
    if a.reference:
        check_reference(a.reference, model, x, labels, out)
    tensors = dict(model.state_dict())
    tensors['input.features'] = x
    tensors['input.labels'] = labels
    tensors.update(out)
    write_safetensors(a.out, tensors, {'generator': 'scripts/make-stage1-parity.py', 'torch': torch.__version__,
                                       'D': str(D), 'C': str(C), 'T': str(T), 'heads': str(HEADS), 'ffn': str(FFN)})
    print(f'written {a.out}')


if __name__ == '__main__':
    main()
