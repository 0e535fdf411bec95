"""
hrpro_reference.py: imports the HR-Pro reference implementation's own modules at run time, for our
scripts that run it (run-reference-hrpro.py: training from scratch; make-reference-parity.py: the
parity fixture). Nothing of the reference is in this project: its files are read with `git show`
from a local clone or bare mirror of github.com/pipixin321/HR-Pro into a temporary folder, which
goes on sys.path.

What we adapt around it (never inside it):
  - tqdm, termcolor, tensorboard_logger: stubs; numpy >= 1.24's lost aliases (np.int, np.float,
    np.bool) restored as the builtins they stood for (both: reference_support.py, shared with
    bench-reference-stage1.py and tspnet_reference.py);
  - its dataset reads './dataset/THUMOS14/Ambiguous_test.txt' relative to the working directory:
    we chdir into a scratch folder holding a link to the dataset's own list;
  - its options only know THUMOS14's class names: args.class_name_lst is set from the dataset.
Needs torch, torchvision (stage 2), numpy, scipy, pandas, joblib, PyYAML (Debian: python3-torch
python3-torchvision python3-scipy python3-pandas python3-joblib python3-yaml).
"""
import json
import os
import sys
import tempfile
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_support  # noqa: E402
from reference_support import copy_files, git_commit, restore_numpy_aliases, stub_modules  # noqa: E402,F401

FILES = ['main.py', 'options.py', 'dataset.py', 'train.py', 'test.py', 'model_S.py', 'model_I.py', 'utils.py', 'log.py',
         'ranking.py', 'cfgs/thumos_hyp.yaml', 'eval/eval_detection.py', 'eval/utils_eval.py']

# where the reference is, unless --reference says: the first of these that is set
ENV = ('PSTAL_HRPRO_REFERENCE', 'PSTAL_REFERENCE')
PROJECT = 'pipixin321/HR-Pro'


def add_reference_argument(parser, *aliases):
    """--reference, by default $PSTAL_HRPRO_REFERENCE (or $PSTAL_REFERENCE); returns the check for the
    parsed arguments (reference_support.add_reference_argument)."""
    return reference_support.add_reference_argument(parser, ENV, PROJECT, *aliases)


def load(repo, files=FILES):
    """Copies the reference's files (a clone, mirror or plain folder) into a temporary folder and puts it
    on sys.path, adapted as reference_support.py says. Returns the folder."""
    if not os.path.exists(repo):
        raise SystemExit(f'no HR-Pro clone or mirror at {repo} (pass --reference, or set {ENV[0]}, to a clone of github.com/{PROJECT})')
    tmp = tempfile.mkdtemp(prefix='hrpro-ref-')
    copy_files(repo, tmp, files)
    open(os.path.join(tmp, 'eval', '__init__.py'), 'a').close()
    restore_numpy_aliases(tmp)
    stub_modules()
    sys.path.insert(0, tmp)
    return tmp


def dataset_classes(data):
    with open(os.path.join(data, 'gt_full.json')) as f:
        db = json.load(f)['database']
    return sorted({a['label'] for v in db.values() for a in v['annotations']})


def make_args(data, out, seed=0, feature_dim=None, class_names=None, **overrides):
    """The reference's args exactly as options.parse_args builds them from cfgs/thumos_hyp.yaml, with our
    dataset folder, output folder and feature width. `data` must be in the standard layout (SPEC §1)."""
    import options
    import yaml
    data = os.path.abspath(data)
    out = os.path.abspath(out)
    args = types.SimpleNamespace(cfg='thumos', mode='train', stage=1, seed=seed, ckpt_path=out)
    with open(os.path.join(os.path.dirname(options.__file__), 'cfgs', 'thumos_hyp.yaml')) as f:
        for k, v in yaml.load(f, Loader=yaml.FullLoader).items():
            setattr(args, k, v)
    args.data_path = data
    args.num_workers = 0
    if feature_dim is None:
        split = [l.strip() for l in open(os.path.join(data, 'split_train.txt')) if l.strip()]
        feature_dim = int(np.load(os.path.join(data, 'features', 'train', split[0] + '.npy'), mmap_mode='r').shape[1])
    args.feature_dim = feature_dim
    for k, v in overrides.items():
        setattr(args, k, v)
    args = options.init_args(args)
    names = class_names or dataset_classes(data)
    args.class_name_lst = names
    args.num_class = len(names)
    # its dataset reads the ambiguous list from ./dataset/THUMOS14/: a scratch working folder links it
    work = os.path.join(out, 'cwd')
    os.makedirs(os.path.join(work, 'dataset', 'THUMOS14'), exist_ok=True)
    amb = os.path.join(work, 'dataset', 'THUMOS14', 'Ambiguous_test.txt')
    src = os.path.join(data, 'Ambiguous_test.txt')
    if not os.path.exists(amb):
        if os.path.exists(src):
            os.symlink(src, amb)
        else:
            open(amb, 'w').close()
    os.chdir(work)
    return args


class StubLogger:
    """log.log_evaluate returns the mAP only when given a logger (its return sits inside `if logger`)."""

    def log_value(self, *a, **k):
        pass


def disable_dropout(net):
    """Dropout to identity in every nn.Dropout and nn.MultiheadAttention of a reference model, so a
    training-mode pass is deterministic and comparable across implementations."""
    import torch.nn as nn
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
