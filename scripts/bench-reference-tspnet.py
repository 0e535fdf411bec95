#!/usr/bin/env python3
"""
bench-reference-tspnet.py: times the TSPNet reference's own code on a dataset in the standard layout
and base proposals files, for benchmarks/tspnet.ts to set beside ours in the same run. The
reference's modules (github.com/zyxia1009/CVPR2024-TSPNet, codes/) are imported at run time from a
clone or mirror by scripts/tspnet_reference.py (nothing of it is in this project); the data is laid
out as it wants it (SPEC §5.1: rgb/flow halves, gt.json, fps.json, the point csv,
LAC_proposal_THUMOS14_{train,test}.json) for the videos timed, and its PTAL_Dataset builds the labels.
  - one training iteration = its train_one_proposal_batch on 10 videos (forward with RoI align,
    PTAL_Loss, backward of the mean, one Adam step, lr 5e-5, weight decay 1e-3); iteration i uses
    training videos 10i .. 10i+9 in split order, as ours does
  - one test pass = its test_proposal over the test videos (forward, softmax/sigmoid scores, ABA,
    soft-NMS, the ambiguous filter, ANETdetection mAP; plus its results JSON and torch.save)
Samples are built before the clock starts (feature loading is not timed, as ours has them in memory).
Needs torch, torchvision, numpy, pandas (Debian: python3-torch python3-torchvision python3-pandas).
Prints one JSON object: {"train_iteration_s": [...], "test_pass_s": ..., "threads": ..., ...}.

  /usr/bin/python3 scripts/bench-reference-tspnet.py --data DIR --proposals-train A.json --proposals-test B.json \
      [--reference DIR] [--iterations 3] [--warmup 1] \
      [--test-videos N] [--no-test] [--threads N]

--reference: a clone or mirror of zyxia1009/CVPR2024-TSPNet (default: $PSTAL_TSPNET_REFERENCE).
"""
import argparse
import json
import os
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tspnet_reference as ref  # noqa: E402

BLOCKED = ['video_test_0000270', 'video_test_0001292', 'video_test_0001496']


def split(data, name):
    with open(os.path.join(data, f'split_{name}.txt')) as f:
        return [l.strip() for l in f if l.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', required=True)
    p.add_argument('--proposals-train', required=True)
    p.add_argument('--proposals-test', required=True)
    check = ref.add_reference_argument(p)
    p.add_argument('--iterations', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--test-videos', type=int, default=0, help='the first N test videos (0: all)')
    p.add_argument('--no-test', action='store_true')
    p.add_argument('--threads', type=int, default=0)
    a = check(p.parse_args())
    ref.load(a.reference)
    import numpy as np
    import torch
    from torch.utils.data import default_collate
    from dataset import PTAL_Dataset
    from model import TSPNet_Model
    from utils import PTAL_Loss
    from tools import train_one_proposal_batch
    import tools.test_proposal  # noqa: F401
    tp = sys.modules['tools.test_proposal']
    if a.threads:
        torch.set_num_threads(a.threads)

    db = json.load(open(os.path.join(a.data, 'gt_full.json')))['database']
    classes = sorted({x['label'] for v in db.values() for x in v['annotations']})
    train_all, test_all = split(a.data, 'train'), split(a.data, 'test')
    subsets = {'train': db[train_all[0]]['subset'], 'test': db[test_all[0]]['subset']}
    need = 10 * (a.iterations + a.warmup)
    train_names = [train_all[i % len(train_all)] for i in range(need)]
    test_names = test_all[: a.test_videos] if a.test_videos else test_all
    work = tempfile.mkdtemp(prefix='tspnet-bench-')
    cwd = os.path.join(work, 'cwd')
    ref.make_data_folder(a.data, cwd, classes, subsets, {'train': a.proposals_train, 'test': a.proposals_test},
                         only={'train': sorted(set(train_names)), 'test': [] if a.no_test else test_names})
    os.chdir(cwd)
    D = np.load(os.path.join(a.data, 'features', 'train', train_names[0] + '.npy'), mmap_mode='r').shape[1]
    args = types.SimpleNamespace(num_classes=len(classes), feature_size=D, max_proposal=3000, roi_size=12, refine_threshold=0.4,
                                 data_path='./data/THUMOS14', output_folder=os.path.join(work, 'log'))
    os.makedirs(args.output_folder)

    devnull = open(os.devnull, 'w')
    stdout, sys.stdout = sys.stdout, devnull  # its dataset and evaluator print; our stdout is the JSON line
    try:
        train = PTAL_Dataset(data_path='./data/THUMOS14', subset='train', num_classes=len(classes))
        index = {n: i for i, n in enumerate(train.vid_names)}
        samples = [default_collate([train[index[n]]]) for n in train_names]
        torch.manual_seed(0)
        model = TSPNet_Model(args)
        crit = PTAL_Loss()
        opt = torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-3)
        times = []
        for i in range(a.iterations + a.warmup):
            it = iter(samples[10 * i: 10 * i + 10])
            t0 = time.perf_counter()
            train_one_proposal_batch(model, torch.device('cpu'), it, crit, opt, 10)
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        out = {'train_iteration_s': times, 'threads': torch.get_num_threads(), 'torch': torch.__version__, 'D': D, 'C': len(classes),
               'proposals_train': [int(s[3].shape[1]) for s in samples[10 * a.warmup:]]}
        if not a.no_test:
            test = PTAL_Dataset(data_path='./data/THUMOS14', subset='test', num_classes=len(classes))
            loader = [default_collate([test[i]]) for i in range(len(test))]
            captured = {}
            orig_eval = tp.ANETdetection.evaluate

            def evaluate(self):
                # with a part of the test set some classes have no ground truth: number the present ones
                # densely (its AP array is indexed by class id) and drop predictions of the others, which
                # score no AP (as ours); with all test videos every class is present and nothing changes
                dense = {cidx: i for i, cidx in enumerate(sorted(self.activity_index.values()))}
                if any(k != v for k, v in dense.items()):
                    self.activity_index = {name: dense[c] for name, c in self.activity_index.items()}
                    self.ground_truth['label'] = self.ground_truth['label'].map(dense)
                    pred = self.prediction[self.prediction['label'].astype(int).isin(list(dense))].copy()
                    pred['label'] = pred['label'].astype(int).map(dense)
                    self.prediction = pred.reset_index(drop=True)
                m, apc = orig_eval(self)
                captured['map'] = m
                return m, apc
            tp.ANETdetection._import_ground_truth = ref.ground_truth_loader(a.data, subsets['test'], classes, BLOCKED, names=set(test_names))
            tp.ANETdetection.evaluate = evaluate
            t0 = time.perf_counter()
            tp.test_proposal(args, model, torch.device('cpu'), loader, 0)
            out['test_pass_s'] = time.perf_counter() - t0
            out['test_videos'] = len(loader)
            out['test_average_map'] = float(np.mean(captured['map'])) if 'map' in captured else None
    finally:
        sys.stdout = stdout
    print(json.dumps(out))


if __name__ == '__main__':
    main()
