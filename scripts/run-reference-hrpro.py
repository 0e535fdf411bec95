#!/usr/bin/env python3
"""
run-reference-hrpro.py: trains the HR-Pro reference (its own main.py, imported at run time from a
clone or mirror of github.com/pipixin321/HR-Pro, see scripts/hrpro_reference.py) on a dataset in the
standard layout, so its numbers can be set beside pstal's on the same data (README "Fidelity").

  /usr/bin/python3 scripts/run-reference-hrpro.py --data DIR --out OUT --seed 0 \
      [--iterations 300] [--test-every 50] [--threads 1] [--stage2 [--epochs 20]] [--reference DIR]

Runs main(args) for stage 1 (mode train: memory init, training, a test every --test-every
iterations, the best checkpoint by average mAP(0.1:0.7)); with --stage2 also main in mode test
(the best checkpoint's test passes and the reliability ranking) and stage 2 training. Writes
OUT/summary.json: every test's mAP table, the best, wall times, torch version, reference commit.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hrpro_reference as ref  # noqa: E402


def table(info, i):
    keys = ['mAP@0.1', 'mAP@0.2', 'mAP@0.3', 'mAP@0.4', 'mAP@0.5', 'mAP@0.6', 'mAP@0.7',
            'average_mAP[0.1:0.5]', 'average_mAP[0.3:0.7]', 'average_mAP[0.1:0.7]']
    return {k: float(info[k][i]) * 100 for k in keys}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--iterations', type=int, default=1000)
    p.add_argument('--test-every', type=int, default=50)
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--stage2', action='store_true')
    p.add_argument('--epochs', type=int, default=20)
    check = ref.add_reference_argument(p)
    a = check(p.parse_args())
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    data, out = os.path.abspath(a.data), os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    ref.load(a.reference)
    import main as ref_main

    summary = {'reference_commit': ref.git_commit(a.reference), 'torch': torch.__version__, 'threads': torch.get_num_threads(),
               'data': data, 'seed': a.seed, 'iterations': a.iterations, 'test_every': a.test_every}
    args = ref.make_args(data, out, seed=a.seed, num_iters=a.iterations, test_iter=a.test_every, max_epochs=a.epochs)
    t0 = time.time()
    ref_main.main(args)
    info = args.test_info
    summary['stage1_seconds'] = time.time() - t0
    summary['stage1_tests'] = [dict(step=int(info['step'][i]), **table(info, i)) for i in range(len(info['step']))]
    summary['stage1_best'] = max(summary['stage1_tests'], key=lambda r: r['average_mAP[0.1:0.7]'])
    print(json.dumps({'stage1_best': summary['stage1_best']}))
    if a.stage2:
        t0 = time.time()
        args = ref.make_args(data, out, seed=a.seed, mode='test', stage=1)
        ref_main.main(args)
        summary['ranking_seconds'] = time.time() - t0
        t0 = time.time()
        args = ref.make_args(data, out, seed=a.seed, mode='train', stage=2, max_epochs=a.epochs)
        ref_main.main(args)
        info = args.test_info
        summary['stage2_seconds'] = time.time() - t0
        summary['stage2_tests'] = [dict(epoch=int(info['step'][i]), **table(info, i)) for i in range(len(info['step']))]
        summary['stage2_best'] = max(summary['stage2_tests'], key=lambda r: r['average_mAP[0.1:0.7]'])
        print(json.dumps({'stage2_best': summary['stage2_best']}))
    tmp = os.path.join(out, 'summary.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, os.path.join(out, 'summary.json'))


if __name__ == '__main__':
    main()
