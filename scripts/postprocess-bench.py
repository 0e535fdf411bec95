#!/usr/bin/env python3
"""Baseline for benchmarks/postprocess.ts: stage-1 proposals + class-wise Gaussian soft-NMS
(SPEC section 2) for a set of videos in plain numpy/scipy, vectorised the way a numpy user would
write it (our own code, from the SPEC). Usage:
    python3 scripts/postprocess-bench.py DIR
DIR holds set.json ({videos: [{T, C, classes, offset}]}) and cas.f32 / agnostic.f32 (float32, the
videos' [T, C] and [T] arrays back to back). Prints JSON: seconds for proposals, soft-NMS, both.
"""
import json
import os
import sys
import time

import numpy as np
from scipy.interpolate import interp1d

SCALE = 2
STEP = 16 / 25 / SCALE
LAMBDA = 0.25
CAS_THR = np.arange(0.0, 0.25, 0.025)
AGN_THR = np.arange(0.5, 0.725, 0.025)


def upsample(x):
    T = x.shape[0]
    return interp1d(np.arange(T), x, kind='linear', axis=0, fill_value='extrapolate')(np.arange(0, T, 1 / SCALE))


def runs(mask):
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return zip(np.where(edges == 1)[0], np.where(edges == -1)[0] - 1)


def oic(seq, mask, cls, out):
    L = len(seq)
    for a, b in runs(mask):
        n = b - a + 1
        lo, hi = max(0, int(a - LAMBDA * n)), min(L - 1, int(b + LAMBDA * n))
        band = np.concatenate([seq[lo:a], seq[b + 1:hi + 1]])
        score = np.mean(seq[a:b + 1]) - (np.mean(band) if len(band) else 0.0)
        out.setdefault(cls, []).append([a * STEP, (b + 1) * STEP, cls, score])


def proposals(cas, agnostic, classes):
    up, agn, out = upsample(cas[:, classes]), upsample(agnostic), {}
    for thr in CAS_THR:
        for k, c in enumerate(classes):
            seq = np.where(up[:, k] < thr, 0.0, up[:, k])
            oic(seq, seq > 0, c, out)
    for thr in AGN_THR:
        mask = np.where(agn < thr, 0.0, agn) > 0
        for k, c in enumerate(classes):
            oic(up[:, k], mask, c, out)
    return out


def soft_nms(rows, sigma=0.3):
    d = np.array(rows, dtype=np.float64)
    kept = []
    while len(d):
        m = int(np.argmax(d[:, 3]))
        d[[0, m]] = d[[m, 0]]
        kept.append(d[0].copy())
        rest = d[1:]
        inter = np.maximum(np.minimum(d[0, 1], rest[:, 1]) - np.maximum(d[0, 0], rest[:, 0]) + 1, 0.0)
        iou = inter / ((d[0, 1] - d[0, 0] + 1) + (rest[:, 1] - rest[:, 0] + 1) - inter)
        rest[:, 3] *= np.exp(-(iou * iou) / sigma)
        d = rest
    return kept


def main():
    folder = sys.argv[1]
    meta = json.load(open(os.path.join(folder, 'set.json')))
    cas_all = np.fromfile(os.path.join(folder, 'cas.f32'), dtype=np.float32)
    agn_all = np.fromfile(os.path.join(folder, 'agnostic.f32'), dtype=np.float32)
    videos = []
    for v in meta['videos']:
        T, C = v['T'], v['C']
        videos.append((cas_all[v['casOffset']:v['casOffset'] + T * C].reshape(T, C),
                       agn_all[v['agnOffset']:v['agnOffset'] + T], np.array(v['classes'])))
    t0 = time.perf_counter()
    cands = [proposals(*v) for v in videos]
    t1 = time.perf_counter()
    count = 0
    for per_class in cands:
        for rows in per_class.values():
            count += len(soft_nms(rows))
    t2 = time.perf_counter()
    print(json.dumps({'proposalsSeconds': t1 - t0, 'nmsSeconds': t2 - t1, 'totalSeconds': t2 - t0, 'count': count,
                      'numpy': np.__version__}))


if __name__ == '__main__':
    main()
