#!/usr/bin/env python3
"""
bench-reference-stage1.py: times the PyTorch reference's own stage-1 code on a dataset in the
standard layout, for benchmarks/stage1.ts to set beside ours in the same run. It reads the
reference's train.py / test.py / model_S.py / utils.py / eval/ from a local clone or bare mirror of
github.com/pipixin321/HR-Pro at run time into a temporary folder (nothing of it is in this
project) and drives its functions as its main.py does:
  - one training iteration = the reference's S_train (16 videos forwarded one at a time, the
    criterion with select_seed, contrastive loss and memory update, one backward, one Adam step)
  - one test pass = the reference's S_test (forward, upsampling, multi-threshold OIC proposals,
    soft-NMS, ambiguous filter, results JSON, ANETdetection mAP)
Videos are taken in split order (iteration i uses train videos 16i .. 16i+15), as ours does.
Needs torch, numpy, scipy, pandas (Debian: python3-torch python3-scipy python3-pandas).
Prints one JSON object: {"train_iteration_s": [...], "test_pass_s": ..., "threads": ...}.

  /usr/bin/python3 scripts/bench-reference-stage1.py --data DIR [--reference DIR] \
      [--iterations 3] [--warmup 1] [--no-test] [--threads N] [--test-videos N] [--device cuda]

--test-videos N times the test pass on the first N test videos only (a quick check of the harness).
--device cuda runs the reference on the GPU as its main.py does there (model and inputs moved with
args.device; PyTorch's defaults otherwise, cuDNN's TF32 convolutions included); every timed region
ends with torch.cuda.synchronize(). --reference (default: $PSTAL_HRPRO_REFERENCE, else $PSTAL_REFERENCE)
may also be a plain folder holding the files.
"""
import argparse
import csv
import json
import os
import sys
import time
import types

import numpy as np
import torch

import hrpro_reference  # (scripts/, beside this file)

FILES = ['train.py', 'test.py', 'model_S.py', 'utils.py', 'log.py', 'eval/eval_detection.py', 'eval/utils_eval.py']


def load_split(data, name):
    with open(os.path.join(data, f'split_{name}.txt')) as f:
        return [l.strip() for l in f if l.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', required=True)
    check = hrpro_reference.add_reference_argument(p)
    p.add_argument('--iterations', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--no-test', action='store_true')
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--test-videos', type=int, default=0)
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--profile', action='store_true', help='one more S_train under torch.profiler: its op table on stderr')
    a = check(p.parse_args())
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == 'cuda' else (lambda: None)
    if a.threads:
        torch.set_num_threads(a.threads)
        try:
            torch.set_num_interop_threads(a.threads)
        except RuntimeError:
            pass
    tmp = hrpro_reference.load(a.reference, files=FILES)
    import model_S
    import train as ref_train
    import test as ref_test

    with open(os.path.join(a.data, 'gt_full.json')) as f:
        gt = json.load(f)['database']
    classes = sorted({ann['label'] for v in gt.values() for ann in v['annotations']})
    C = len(classes)
    cidx = {c: i for i, c in enumerate(classes)}
    points = {}
    with open(os.path.join(a.data, 'point_labels', 'point_gaussian.csv')) as f:
        for row in csv.DictReader(f):
            points.setdefault(row['video_id'], []).append((float(row['point']), row['class']))

    def sample(name, phase):
        x = np.load(os.path.join(a.data, 'features', phase, name + '.npy')).astype(np.float32)
        T = x.shape[0]
        label = np.zeros(C, dtype=np.float32)
        for ann in gt[name]['annotations']:
            label[cidx[ann['label']]] = 1
        pl = np.zeros((T, C), dtype=np.float32)
        fps = gt[name]['fps']
        for frame, cls in points.get(name, []):
            if cls in cidx:
                pl[min(T - 1, int(frame * 25 / (fps * 16))), cidx[cls]] = 1
        return dict(data=torch.from_numpy(x)[None], vid_label=torch.from_numpy(label)[None], point_label=torch.from_numpy(pl)[None],
                    vid_name=[name], vid_len=torch.tensor([T]), vid_duration=torch.tensor([gt[name]['duration']]))

    train_names = load_split(a.data, 'train')
    D = np.load(os.path.join(a.data, 'features', 'train', train_names[0] + '.npy'), mmap_mode='r').shape[1]
    args = types.SimpleNamespace(
        feature_dim=D, num_class=C, r_act=8, dropout=0.7, lambdas=[0, 0.5, 1, 1], dataset='THUMOS14', batch_size=16,
        RAB_args={'drop_out': 0.3, 'num_heads': 8, 'dim_feedforward': 128, 'layer_num': 2}, device=device,
        class_thresh=0.5, scale=2, act_thresh_cas=np.arange(0.0, 0.25, 0.025), act_thresh_agnostic=np.arange(0.5, 0.725, 0.025),
        _lambda=0.25, gamma=0, frames_per_sec=25, mode='train', class_name_lst=classes, output_path_s1=tmp, data_path=a.data,
        tIoU_thresh=np.linspace(0.1, 0.7, 7), blocked_videos=['video_test_0000270', 'video_test_0001292', 'video_test_0001496'],
        seed=0)
    torch.manual_seed(0)
    net = model_S.S_Model(args).to(device)
    with torch.no_grad():
        net.memory.proto_vectors.normal_(0, 0.1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4)
    logger = types.SimpleNamespace(log_value=lambda *a, **k: None)
    need = 16 * (a.iterations + a.warmup)
    samples = [sample(train_names[i % len(train_names)], 'train') for i in range(need)]

    times = []
    it = iter(samples)
    for i in range(a.iterations + a.warmup):
        t0 = time.perf_counter()
        ref_train.S_train(i + 1, args, net, it, opt, logger)
        sync()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    if a.profile:
        from torch.profiler import profile, ProfilerActivity
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if a.device == 'cuda' else [])
        more = [sample(train_names[(need + i) % len(train_names)], 'train') for i in range(16)]
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            ref_train.S_train(0, args, net, iter(more), opt, logger)
            sync()
            wall = time.perf_counter() - t0
        key = 'self_cuda_time_total' if a.device == 'cuda' else 'self_cpu_time_total'
        print(f'profiled S_train: {wall * 1e3:.1f} ms wall', file=sys.stderr)
        print(prof.key_averages().table(sort_by=key, row_limit=25), file=sys.stderr)
    out = {'train_iteration_s': times, 'threads': torch.get_num_threads(), 'torch': torch.__version__, 'D': D, 'C': C,
           'device': torch.cuda.get_device_name(0) if a.device == 'cuda' else 'cpu'}

    if not a.no_test:
        test_names = load_split(a.data, 'test')
        if a.test_videos:
            test_names = test_names[:a.test_videos]
        test_samples = [sample(n, 'test') for n in test_names]
        amb = os.path.join(a.data, 'Ambiguous_test.txt')
        ambilist = [l.strip('\n').split(' ') for l in open(amb)] if os.path.exists(amb) else []

        class Loader(list):
            pass

        loader = Loader(test_samples)
        loader.dataset = types.SimpleNamespace(ambilist=ambilist)
        info = {k: [] for k in ['step', 'test_acc', 'loss', 'elapsed', 'now', 'average_mAP[0.1:0.7]', 'average_mAP[0.1:0.5]',
                                'average_mAP[0.3:0.7]'] + [f'mAP@{t:.1f}' for t in args.tIoU_thresh]}
        t0 = time.perf_counter()
        ref_test.S_test(net, args, loader, None, 0, info)
        sync()
        out['test_pass_s'] = time.perf_counter() - t0
        out['test_average_map'] = info['average_mAP[0.1:0.7]'][-1] if info['average_mAP[0.1:0.7]'] else None
        out['test_videos'] = len(test_names)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
