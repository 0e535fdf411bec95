#!/usr/bin/env python3
"""Writes test/fixtures/eval/parity.json: a small random ground truth + predictions scored by the
reference evaluator (HR-Pro eval/eval_detection.py, ANETdetection), for test/unit/eval.test.ts.

The reference files are read at run time from a clone or bare mirror of github.com/pipixin321/HR-Pro
(--reference, or PSTAL_HRPRO_REFERENCE) into a temporary directory; nothing of them is committed.
Exact score ties are avoided (the reference's order for them is undefined). The case covers:
duplicates of one gt, several gt per video, predictions for videos of another subset and for videos
without annotations, a class without predictions, blocked videos.

usage: python3 scripts/eval-parity.py [--reference DIR] [--out FILE] [--seed N]
"""
import argparse, json, os, sys, tempfile
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hrpro_reference  # noqa: E402
from reference_support import copy_files, restore_numpy_aliases  # noqa: E402

PANDAS_SHIM = r"""
import numpy as np

class Series:
    def __init__(self, values, index):
        self.values = np.empty(len(values), dtype=object); self.values[:] = list(values)
        self.index = index
    def __getitem__(self, key):
        if isinstance(key, list):
            return Series([self.values[self.index.index(k)] for k in key], key)
        return self.values[self.index.index(key)]

class _Loc:
    def __init__(self, df):
        self.df = df
    def __getitem__(self, key):
        pos = {lab: i for i, lab in enumerate(self.df.index)}
        if np.ndim(key) == 0:
            i = pos[key]
            return Series([self.df.cols[c][i] for c in self.df.order], list(self.df.order))
        rows = [pos[k] for k in key]
        return DataFrame({c: self.df.cols[c][rows] for c in self.df.order}, index=[self.df.index[r] for r in rows])

class _Col:
    def __init__(self, values):
        self.values = values

class DataFrame:
    def __init__(self, data=None, index=None):
        data = data or {}
        self.order = list(data.keys())
        self.cols = {k: np.asarray(v) for k, v in data.items()}
        n = len(next(iter(self.cols.values()))) if self.cols else 0
        self.index = list(range(n)) if index is None else list(index)
    def __len__(self):
        return len(self.index)
    @property
    def empty(self):
        return len(self.index) == 0 or not self.order
    def __getitem__(self, key):
        if isinstance(key, list):
            return _Col(np.stack([self.cols[k] for k in key], axis=1))
        return _Col(self.cols[key])
    @property
    def loc(self):
        return _Loc(self)
    def reset_index(self, drop=False):
        cols = {} if drop else {'index': np.asarray(self.index)}
        cols.update(self.cols)
        return DataFrame(cols)
    def groupby(self, key):
        return _GroupBy(self, key)
    def iterrows(self):
        for i, lab in enumerate(self.index):
            yield lab, Series([self.cols[c][i] for c in self.order], list(self.order))

class _GroupBy:
    def __init__(self, df, key):
        self.df, self.key = df, key
    def get_group(self, value):
        rows = [i for i, v in enumerate(self.df.cols[self.key]) if v == value]
        if not rows:
            raise KeyError(value)
        return DataFrame({c: self.df.cols[c][rows] for c in self.df.order}, index=[self.df.index[r] for r in rows])
"""

ap = argparse.ArgumentParser()
check = hrpro_reference.add_reference_argument(ap, '--mirror')
ap.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'eval', 'parity.json'))
ap.add_argument('--seed', type=int, default=7)
args = check(ap.parse_args())

tmp = tempfile.mkdtemp(prefix='pstal-eval-parity-')
pkg = os.path.join(tmp, 'refeval')
os.makedirs(pkg)
copy_files(args.reference, pkg, ['eval/eval_detection.py', 'eval/utils_eval.py'], rename=os.path.basename)
open(os.path.join(pkg, '__init__.py'), 'w').write('')
restore_numpy_aliases(tmp)  # numpy >= 1.24 removed np.float, which the reference uses in a cast
sys.path.insert(0, tmp)

try:
    import pandas  # noqa: F401
except ImportError:
    # pandas is not installable here: a minimal numpy-backed stand-in for exactly the DataFrame
    # operations the reference evaluator uses (construction from columns, groupby/get_group keeping
    # the row labels, reset_index with and without drop, .loc by labels, column selection, .values,
    # iterrows, empty, len). The matching and AP code that runs is the reference's own.
    open(os.path.join(tmp, 'pandas.py'), 'w').write(PANDAS_SHIM)
try:
    import joblib  # noqa: F401  (the reference runs classes in parallel with it)
except ImportError:
    # a sequential stand-in: same results, one class after another
    open(os.path.join(tmp, 'joblib.py'), 'w').write(
        'def delayed(f):\n    return lambda *a, **k: (f, a, k)\n'
        'class Parallel:\n    def __init__(self, *a, **k): pass\n'
        '    def __call__(self, jobs): return [f(*a, **k) for f, a, k in jobs]\n')
from refeval.eval_detection import ANETdetection

rng = np.random.default_rng(args.seed)
classes = ['Alpha', 'Beta', 'Gamma', 'Delta', 'Epsilon']
database = {}
results = {}
used_scores = set()

def score():
    while True:
        s = float(np.round(rng.uniform(0.01, 1.0), 6))
        if s not in used_scores:
            used_scores.add(s)
            return s

def r1(x):
    return float(np.round(x, 1))

for v in range(14):
    name = 'vid_%03d' % v
    subset = 'Test' if v < 10 else 'Validation'
    dur = float(rng.uniform(40, 120))
    anns = []
    if v not in (3,):  # vid_003: a test video without annotations
        for _ in range(int(rng.integers(1, 6))):
            c = classes[int(rng.integers(0, 4))]  # 'Epsilon' never in gt
            s = r1(rng.uniform(0, dur - 10))
            e = r1(s + rng.uniform(1, 10))
            anns.append({'label': c, 'segment': [s, e]})
    database[name] = {'subset': subset, 'annotations': anns}
    dets = []
    for a in anns:
        if a['label'] == 'Delta':
            continue  # Delta: a class without any prediction (AP 0)
        for _ in range(int(rng.integers(0, 4))):  # 0..3 jittered copies: duplicates of one gt
            s, e = a['segment']
            L = e - s
            dets.append({'label': a['label'], 'score': score(),
                         'segment': [r1(s + rng.normal(0, 0.25) * L), r1(e + rng.normal(0, 0.25) * L)]})
    for _ in range(int(rng.integers(0, 6))):  # background noise
        s = r1(rng.uniform(0, dur - 5))
        dets.append({'label': classes[int(rng.integers(0, 3))], 'score': score(),
                     'segment': [s, r1(s + rng.uniform(0.5, 8))]})
    results[name] = dets

# one exact-boundary case: tIoU exactly 0.5 and 0.3 against a gt [10, 20]
database['vid_000']['annotations'].append({'label': 'Gamma', 'segment': [10.0, 20.0]})
results['vid_000'].append({'label': 'Gamma', 'score': score(), 'segment': [10.0, 15.0]})
results['vid_000'].append({'label': 'Gamma', 'score': score(), 'segment': [10.0, 13.0]})

blocked = ['vid_009']
subset = 'Test'
tiou = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
gt_json = {'version': 'parity', 'database': database}
pred_json = {'version': 'parity', 'results': results, 'external_data': {}}
gp = os.path.join(tmp, 'gt.json'); pp = os.path.join(tmp, 'pred.json')
json.dump(gt_json, open(gp, 'w')); json.dump(pred_json, open(pp, 'w'))

import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    det = ANETdetection(gp, pp, subset=subset, tiou_thresholds=np.array(tiou), verbose=False, blocked_videos=blocked)
    mAP, avg = det.evaluate()
ap_per_class = {name: det.ap[:, idx].tolist() for name, idx in det.activity_index.items()}
out = {'note': 'made by scripts/eval-parity.py with the reference ANETdetection',
       'gt': gt_json, 'results': pred_json, 'subset': subset, 'blocked': blocked, 'tiou': tiou,
       'expectedClasses': list(det.activity_index.keys()),
       'expectedMap': [float(x) for x in mAP], 'expectedApPerClass': ap_per_class,
       'numPredictions': int(len(det.prediction)), 'numGroundTruth': int(len(det.ground_truth))}
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
json.dump(out, open(args.out, 'w'), indent=1)
print('wrote', args.out, 'mAP', [round(float(x), 4) for x in mAP])
