#!/usr/bin/env python3
"""
make-tspnet-parity.py: the TSPNet parity fixture, made by the reference's *own* code (its modules
imported at run time from a clone or mirror of github.com/zyxia1009/CVPR2024-TSPNet by
scripts/tspnet_reference.py; nothing of it is copied into this project). test/reference/tspnet-reference.test.ts
checks pstal against it without Python.

Data: the HR-Pro parity fixture's synthetic dataset (test/fixtures/reference/hrpro/data, D = 32,
THUMOS14's classes and subsets; its files' hash is recorded) plus base proposals written here
(proposals_{train,test}.json, seconds, some segments listed under two classes), laid out as the
reference wants them (tspnet_reference.make_data_folder). With the reference's functions:
  1. the labels it builds: every training video's proposals in snippets, point labels, center
     targets (its PTAL_Dataset);
  2. one training video in train mode (dropout set to identity): the three heads' outputs, both
     losses, every parameter's gradient (initial weights from torch.manual_seed(0));
  3. one train_one_proposal_batch step on 10 videos in a fixed order: the weights after it;
  4. with weights trained a little (its own loop: TRAIN_ITERS = 1000 batches, lr 1e-3, dropout on), two consecutive
     saliency point updates (its update_label): every point's time and the rebuilt labels after each;
  5. a test_proposal pass with those weights: every detection (converted to seconds) and the mAP;
  6. what it does with more proposals than max_proposal in training (the error it raises).

Output (format version in expected.json; bump FORMAT when the layout changes):
  test/fixtures/reference/tspnet/proposals_train.json, proposals_test.json
  test/fixtures/reference/tspnet/tensors.safetensors   weights, outputs, gradients (float32)
  test/fixtures/reference/tspnet/expected.json         labels, losses, points, detections, mAP
Regenerate: /usr/bin/python3 scripts/make-tspnet-parity.py [--reference DIR]
(DIR: a clone or bare mirror of github.com/zyxia1009/CVPR2024-TSPNet; default $PSTAL_TSPNET_REFERENCE)
"""
import argparse
import hashlib
import importlib.util
import json
import os
import random
import sys
import tempfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tspnet_reference as ref  # noqa: E402

spec = importlib.util.spec_from_file_location('hrpro_parity', os.path.join(HERE, 'make-reference-parity.py'))
hp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hp)  # for CLASSES and write_safetensors (it runs nothing on import)

FORMAT = 1
TRAIN_ITERS = 1000
UP_THRESHOLD = 0.8
FIX = os.path.join(HERE, '..', 'test', 'fixtures', 'reference')
DATA = os.path.join(FIX, 'hrpro', 'data')
OUT = os.path.join(FIX, 'tspnet')
D = 32
SUBSETS = {'train': 'Validation', 'test': 'Test'}
BLOCKED = ['video_test_0000270', 'video_test_0001292', 'video_test_0001496']


def data_hash(data):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(data)):
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(os.path.relpath(p, data).encode())
            h.update(open(p, 'rb').read())
    return h.hexdigest()


def make_proposals(seed=1):
    """Jittered copies of every ground-truth segment and random segments, in seconds (3 decimals)."""
    rs = np.random.RandomState(seed)
    db = json.load(open(os.path.join(DATA, 'gt_full.json')))['database']
    out = {}
    for split in ('train', 'test'):
        names = [l.strip() for l in open(os.path.join(DATA, f'split_{split}.txt')) if l.strip()]
        res = {}
        for n in names:
            T = np.load(os.path.join(DATA, 'features', split, n + '.npy'), mmap_mode='r').shape[0]
            end = T * 16 / 25
            segs = []
            for a in db[n]['annotations']:
                s0, e0 = a['segment']
                for _ in range(4):
                    segs.append((s0 + rs.normal(0, 0.7), e0 + rs.normal(0, 0.7), a['label']))
            for _ in range(10):
                s = rs.uniform(0, end - 1)
                segs.append((s, s + rs.uniform(0.8, 8), hp.CLASSES[rs.randint(len(hp.CLASSES))]))
            lst = []
            for s, e, label in segs:
                s, e = round(float(max(0.0, s)), 3), round(float(min(end, e)), 3)
                if e - s < 0.3:
                    continue
                lst.append({'segment': [s, e], 'label': label, 'score': round(float(rs.uniform()), 4)})
            # a segment listed once per class, as base locators write them (the reference keeps both). Not in
            # the test subset: there the two copies tie, and which one ABA leads with is decided by float
            # noise in the reference's batched matmul (identical RoIs in different rows), not by its code.
            if split == 'train':
                lst.append(dict(lst[0], label=hp.CLASSES[(hp.CLASSES.index(lst[0]['label']) + 1) % 20]))
            res[n] = lst
        out[split] = res
    return out


def tolist(x):
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, 'tolist') else float(o)))


def labels_of(ds):
    """Per training video: proposals (snippets), point-label nonzeros [m, c], center targets, and the
    point id as the position of that point among the video's rows (the reference keeps the csv row)."""
    out = {}
    for n in ds.vid_names:
        rows = list(ds.p_label.get_group(n).index)
        out[n] = {'proposals': ds.proposals[n], 'label': [[int(m), int(c)] for m, c in zip(*np.nonzero(ds.proposals_point[n]))],
                  'center': ds.proposals_center_label[n], 'point_id': [rows.index(int(i)) if i >= 0 else -1 for i in ds.proposals_point_id[n]]}
    return out


def main():
    p = argparse.ArgumentParser()
    check = ref.add_reference_argument(p)
    a = check(p.parse_args())
    ref.load(a.reference)
    import torch
    from torch.utils.data import DataLoader, Subset
    from dataset import PTAL_Dataset
    from model import TSPNet_Model
    from utils import PTAL_Loss, update_label
    from tools import train_one_proposal_batch
    import tools.test_proposal  # noqa: F401
    tp = sys.modules['tools.test_proposal']
    import utils.eval_detectionpmil as ev
    torch.set_num_threads(1)

    os.makedirs(OUT, exist_ok=True)
    props = make_proposals()
    files = {}
    for split in ('train', 'test'):
        files[split] = os.path.join(OUT, f'proposals_{split}.json')
        with open(files[split], 'w') as f:
            json.dump({'version': 'VERSION 1.3', 'units': 'seconds', 'results': props[split]}, f)
    work = tempfile.mkdtemp(prefix='tspnet-parity-')
    root = ref.make_data_folder(DATA, os.path.join(work, 'cwd'), hp.CLASSES, SUBSETS, files)
    os.chdir(os.path.join(work, 'cwd'))

    args = types.SimpleNamespace(num_classes=20, feature_size=D, max_proposal=3000, roi_size=12, refine_threshold=0.4,
                                 data_path='./data/THUMOS14', output_folder=os.path.join(work, 'log'))
    os.makedirs(args.output_folder)
    train = PTAL_Dataset(data_path='./data/THUMOS14', subset='train', num_classes=20)
    test = PTAL_Dataset(data_path='./data/THUMOS14', subset='test', num_classes=20)
    T_, E = {}, {'format': FORMAT, 'generator': 'scripts/make-tspnet-parity.py', 'reference': 'zyxia1009/CVPR2024-TSPNet',
                 'reference_commit': ref.git_commit(a.reference), 'data': 'test/fixtures/reference/hrpro/data', 'data_sha256': data_hash(DATA),
                 'D': D, 'classes': hp.CLASSES}
    E['labels'] = labels_of(train)

    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    model = TSPNet_Model(args)
    for k, v in model.state_dict().items():
        T_[f'init.{k}'] = v.numpy().copy()
    crit = PTAL_Loss()
    drop = model.prop_backbone.prop_fusion[2]

    # 2. one video, train mode, dropout off
    idx = max(range(len(train)), key=lambda i: int((train[i][4].sum(1) > 0).sum()))
    feature, _, name, proposal, point, center, _ = train[idx]
    drop.p = 0.0
    model.train()
    cas, attn, cen, _ = model(feature[None], proposal[None], is_training=True)
    losses = crit({'prop_point_loss': [cas, attn, point[None]], 'prop_saliency_loss': [cen, center[None]]})
    total = crit.compute_total_loss(losses)
    model.zero_grad()
    total.backward()
    T_['step.logits'] = cas[0].T.detach().numpy()
    T_['step.attention'] = attn[0, 0].detach().numpy()
    T_['step.center'] = cen[0, 0].detach().numpy()
    for k, prm in model.named_parameters():
        T_[f'grad.{k}'] = prm.grad.numpy().copy()
    E['step'] = {'video': name, 'losses': {'point': losses['prop_point_loss'].item(), 'saliency': losses['prop_saliency_loss'].item(), 'total': total.item()}}

    # 3. one batch step on 10 videos in a fixed order
    model.load_state_dict({k[5:]: torch.tensor(v) for k, v in T_.items() if k.startswith('init.')})
    opt = torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-3)
    order = list(range(10))
    loader = iter(DataLoader(Subset(train, order), batch_size=1, shuffle=False))
    train_one_proposal_batch(model, torch.device('cpu'), loader, crit, opt, 10)
    for k, v in model.state_dict().items():
        T_[f'step1.{k}'] = v.numpy().copy()
    E['batch'] = {'videos': [train.vid_names[i] for i in order]}

    # 4. a little training (dropout on), then two point updates
    drop.p = 0.5
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    full = DataLoader(train, batch_size=1, shuffle=True)
    for it in range(TRAIN_ITERS):
        if it % (len(full) // 10) == 0:
            loader = iter(full)
        train_one_proposal_batch(model, torch.device('cpu'), loader, crit, opt, 10)
    for k, v in model.state_dict().items():
        T_[f'test.{k}'] = v.numpy().copy()
    ordered = DataLoader(train, batch_size=1, shuffle=False)
    updates = []
    for _ in range(2):
        seen = {}
        orig = train.updata_label

        def capture(delta):
            seen.update(delta)
            orig(delta)
        train.updata_label = capture
        update_label(train, ordered, model, torch.device('cpu'), up_threshold=UP_THRESHOLD)
        train.updata_label = orig
        fps = train.fps_dict
        pts = {}
        for n in train.vid_names:
            tf = 25 / (fps[n] * 16)
            pts[n] = [float(int(r['point']) * tf) + float(seen[n][str(i)]) if str(i) in seen[n] else float(int(r['point']) * tf)
                      for i, r in train.p_label.get_group(n).iterrows()]
        conf = sum(len([k for k in seen[n] if k != '-1']) for n in seen)
        updates.append({'points': pts, 'labels': labels_of(train), 'moved_points': conf})
    E['updates'] = updates

    # 5. a test pass with those weights
    captured = {}
    orig_eval = ev.ANETdetection.evaluate

    def evaluate(self):
        m, apc = orig_eval(self)
        captured['map'] = m
        return m, apc
    tp.ANETdetection._import_ground_truth = ref.ground_truth_loader(DATA, SUBSETS['test'], hp.CLASSES, BLOCKED)
    tp.ANETdetection.evaluate = evaluate
    tp.test_proposal(args, model, torch.device('cpu'), DataLoader(test, batch_size=1, shuffle=False), 100)
    res = json.load(open(os.path.join(args.output_folder, 'last_proposals.json')))['results']
    E['test'] = {'detections': {n: [[hp.CLASSES.index(d['label']), d['segment'][0] * 16 / 25, d['segment'][1] * 16 / 25, d['score']] for d in lst] for n, lst in res.items()},
                 'map': captured['map'], 'average': float(np.mean(captured['map']))}

    # 6. more proposals than max_proposal in training
    model.max_proposal = 5
    feature, _, name, proposal, point, center, _ = train[idx]
    try:
        cas, attn, cen, _ = model(feature[None], proposal[None], is_training=True)
        crit({'prop_point_loss': [cas, attn, point[None]], 'prop_saliency_loss': [cen, center[None]]})
        E['cap'] = {'error': None}
    except RuntimeError as e:
        E['cap'] = {'error': str(e).split('\n')[0], 'proposals': int(proposal.shape[0]), 'max_proposal': 5}

    hp.write_safetensors(os.path.join(OUT, 'tensors.safetensors'), T_, {'format': FORMAT, 'generator': 'scripts/make-tspnet-parity.py'})
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(tolist(E), f, separators=(',', ':'))
    print(f'wrote {OUT}: step video {E["step"]["video"]}, losses {E["step"]["losses"]}, mAP {E["test"]["average"]:.4f}, '
          f'points moved {[u["moved_points"] for u in updates]}, cap: {E["cap"]}')


if __name__ == '__main__':
    main()
