"""
tspnet_reference.py: imports the TSPNet reference implementation's own modules at run time
(github.com/zyxia1009/CVPR2024-TSPNet, its codes/ folder), for scripts/make-tspnet-parity.py. Nothing
of the reference is in this project: its files are read with `git show` from a local clone or bare
mirror into a temporary folder, which goes on sys.path.

What we adapt around it (never inside it):
  - tqdm, termcolor, tensorboard_logger: stubs (reference_support.py; only exp.py, which we do not
    run, uses tqdm);
  - its evaluator's joblib Parallel(n_jobs=20): run in-process, one class after the other (same
    numbers, no worker processes);
  - its evaluator reads THUMOS14's Annotations/*.npy and deletes hard-coded rows (226, 402) of them:
    the ground truth is given from our dataset instead (the test subset, seconds x 25 / 16, classes
    present in it), the AP computation is its own;
  - it reads ./data/dataset_cls_dict.json and ./data/THUMOS14/Ambiguous_test.txt relative to the
    working directory, and its data folder's name is the dataset's: make_data_folder builds that
    layout (SPEC §5.1) from a dataset in our standard layout.
Needs torch, torchvision, numpy, pandas, joblib (Debian: python3-torch python3-torchvision
python3-pandas python3-joblib).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_support  # noqa: E402
from reference_support import copy_files, git_commit, stub_modules  # noqa: E402,F401

# where the reference is, unless --reference says
ENV = ('PSTAL_TSPNET_REFERENCE',)
PROJECT = 'zyxia1009/CVPR2024-TSPNet'


def add_reference_argument(parser):
    """--reference, by default $PSTAL_TSPNET_REFERENCE; returns the check for the parsed arguments
    (reference_support.add_reference_argument)."""
    return reference_support.add_reference_argument(parser, ENV, PROJECT)


def load(repo):
    """Copies the reference's codes/ into a temporary folder and puts it on sys.path. Returns it."""
    if not os.path.exists(repo):
        raise SystemExit(f'no TSPNet clone or mirror at {repo} (pass --reference, or set {ENV[0]}, to a clone of github.com/{PROJECT})')
    files = subprocess.run(['git', '-C', repo, 'ls-tree', '-r', 'HEAD', '--name-only', 'codes'], check=True, capture_output=True, text=True).stdout.split()
    tmp = tempfile.mkdtemp(prefix='tspnet-ref-')
    copy_files(repo, tmp, [f for f in files if f.endswith('.py')], rename=lambda f: os.path.relpath(f, 'codes'))
    stub_modules()
    sys.path.insert(0, tmp)
    import utils.eval_detectionpmil as ev

    def sequential(n_jobs=None, **k):
        return lambda tasks: [f(*a, **kw) for f, a, kw in tasks]

    ev.Parallel = sequential
    return tmp


def make_data_folder(data, work, classes, subsets, proposals, only=None):
    """The reference's data layout under work/data/THUMOS14 from our dataset folder `data`.
    subsets: {'train': our train subset name, 'test': ...}; proposals: {'train': file, 'test': file};
    only: {'train': names, 'test': names} to lay out those videos of each split alone (benchmarks)."""
    root = os.path.join(work, 'data', 'THUMOS14')
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(root)
    with open(os.path.join(work, 'data', 'dataset_cls_dict.json'), 'w') as f:
        json.dump({'THUMOS14': {c: i for i, c in enumerate(classes)}}, f)
    db = json.load(open(os.path.join(data, 'gt_full.json')))['database']
    ours = {v: k for k, v in subsets.items()}
    gt, fps = {}, {}
    for split in ('train', 'test'):
        names = [l.strip() for l in open(os.path.join(data, f'split_{split}.txt')) if l.strip()]
        if only is not None:
            keep = set(only[split])
            names = [n for n in names if n in keep]
        for n in names:
            v = db[n]
            gt[n] = {'subset': ours[v['subset']], 'annotations': [{'segment': [str(s) for s in a['segment']], 'label': a['label']} for a in v['annotations']]}
            fps[n] = v['fps']
            x = np.load(os.path.join(data, 'features', split, n + '.npy'))
            h = x.shape[1] // 2
            for mod, part in (('rgb', x[:, :h]), ('flow', x[:, h:])):
                os.makedirs(os.path.join(root, 'features', split, mod), exist_ok=True)
                np.save(os.path.join(root, 'features', split, mod, n + '.npy'), np.ascontiguousarray(part))
    json.dump({'database': gt}, open(os.path.join(root, 'gt.json'), 'w'))
    json.dump(fps, open(os.path.join(root, 'fps.json'), 'w'))
    shutil.copy(os.path.join(data, 'point_labels', 'point_gaussian.csv'), os.path.join(root, 'train_df_ts_in_gt.csv'))
    shutil.copy(os.path.join(data, 'Ambiguous_test.txt'), os.path.join(root, 'Ambiguous_test.txt'))
    for split in ('train', 'test'):
        shutil.copy(proposals[split], os.path.join(root, f'LAC_proposal_THUMOS14_{split}.json'))
    return root


def ground_truth_loader(data, test_subset, classes, blocked=(), names=None):
    """An _import_ground_truth for the reference's ANETdetection: our test subset in its units
    (only the videos in `names` when given)."""
    import pandas as pd

    def _import_ground_truth(self, annotation_path):
        db = json.load(open(os.path.join(data, 'gt_full.json')))['database']
        rows = [(n, float(a['segment'][0]) * 25.0 / 16.0, float(a['segment'][1]) * 25.0 / 16.0, classes.index(a['label']))
                for n, v in db.items() if v['subset'] == test_subset and n not in blocked and (names is None or n in names) for a in v['annotations']]
        present = sorted({r[3] for r in rows})
        gtdf = pd.DataFrame({'video-id': [r[0] for r in rows], 't-start': [r[1] for r in rows], 't-end': [r[2] for r in rows], 'label': [r[3] for r in rows]})
        return gtdf, {classes[c]: c for c in present}

    return _import_ground_truth
