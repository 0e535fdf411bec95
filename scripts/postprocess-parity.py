#!/usr/bin/env python3
"""Writes test/fixtures/postprocess-parity.json: stage-1 post-processing (SPEC section 2) computed
with numpy/scipy in float64, for test/unit/postprocess.test.ts to compare with the native kernels.

Written from SPEC.md, in our own structure: scipy interp1d for the upsampling (the library the
reference uses), numpy means for the OIC scores, a direct Gaussian soft-NMS loop. Run:
    python3 scripts/postprocess-parity.py
"""
import json
import os

import numpy as np
from scipy.interpolate import interp1d

SCALE = 2
STEP_SECONDS = 16 / 25 / SCALE
LAMBDA = 0.25
CAS_THR = np.arange(0.0, 0.25, 0.025)
AGN_THR = np.arange(0.5, 0.725, 0.025)


def smooth_scores(rng, T, C):
    """float32 sigmoid of a few random bumps plus noise: [T, C] in (0, 1)."""
    t = np.arange(T)[:, None]
    logits = np.full((T, C), -3.0)
    for c in range(C):
        for _ in range(rng.integers(1, 4)):
            mu, width, height = rng.uniform(0, T), rng.uniform(1, 8), rng.uniform(2, 7)
            logits[:, c] += height * np.exp(-0.5 * ((t[:, 0] - mu) / width) ** 2)
    logits += rng.normal(0, 0.6, size=(T, C))
    return (1 / (1 + np.exp(-logits))).astype(np.float32)


def upsample(x):
    T = x.shape[0]
    f = interp1d(np.arange(T), x, kind='linear', axis=0, fill_value='extrapolate')
    return f(np.arange(0, T, 1 / SCALE))


def runs(mask):
    """[first, last] of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.where(edges == 1)[0], np.where(edges == -1)[0] - 1))


def oic_rows(seq, mask, cls):
    L = len(seq)
    out = []
    for a, b in runs(mask):
        n = b - a + 1
        inner = np.mean(seq[a:b + 1])
        lo = max(0, int(a - LAMBDA * n))
        hi = min(L - 1, int(b + LAMBDA * n))
        band = np.concatenate([seq[lo:a], seq[b + 1:hi + 1]])
        outer = np.mean(band) if len(band) else 0.0
        out.append([a * STEP_SECONDS, (b + 1) * STEP_SECONDS, cls, float(inner - outer)])
    return out


def proposals(cas, agnostic, classes):
    up = upsample(cas[:, classes])           # [L, K] float64
    agn = upsample(agnostic)                 # [L]
    rows = []
    for thr in CAS_THR:
        for k, c in enumerate(classes):
            seq = np.where(up[:, k] < thr, 0.0, up[:, k])
            rows += oic_rows(seq, seq > 0, c)
    for thr in AGN_THR:
        mask = np.where(agn < thr, 0.0, agn) > 0
        for k, c in enumerate(classes):
            rows += oic_rows(up[:, k], mask, c)
    return rows


def soft_nms_class(rows, sigma=0.3):
    rows = [list(r) for r in rows]
    kept = []
    while rows:
        scores = [r[3] for r in rows]
        m = int(np.argmax(scores))
        rows[0], rows[m] = rows[m], rows[0]
        top = rows.pop(0)
        kept.append(top)
        for r in rows:
            inter = max(min(top[1], r[1]) - max(top[0], r[0]) + 1, 0.0)
            iou = inter / ((top[1] - top[0] + 1) + (r[1] - r[0] + 1) - inter)
            r[3] *= float(np.exp(-(iou * iou) / sigma))
    return kept


def soft_nms(rows):
    order = []
    for r in rows:
        if r[2] not in order:
            order.append(r[2])
    out = []
    for c in order:
        out += soft_nms_class([r for r in rows if r[2] == c])
    return out


def main():
    rng = np.random.default_rng(20240601)
    videos = []
    for T, C, classes in [(2, 3, [1]), (9, 4, [0, 3]), (57, 5, [2]), (100, 6, [1, 4])]:
        cas = smooth_scores(rng, T, C)
        agnostic = smooth_scores(rng, T, 1)[:, 0]
        up = upsample(cas)
        cand = proposals(cas, agnostic, classes)
        videos.append({
            'T': T, 'C': C, 'classes': classes,
            'cas': [float(v) for v in cas.reshape(-1)],
            'agnostic': [float(v) for v in agnostic],
            'upsampled': [float(v) for v in up.reshape(-1)],
            'proposals': cand,
            'softNms': soft_nms(cand),
        })
    path = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'postprocess-parity.json')
    with open(path, 'w') as f:
        json.dump({'generator': 'scripts/postprocess-parity.py', 'numpy': np.__version__,
                   'casThresholds': CAS_THR.tolist(), 'agnosticThresholds': AGN_THR.tolist(),
                   'videos': videos}, f)
    print(path, sum(len(v['proposals']) for v in videos), 'proposals')


if __name__ == '__main__':
    main()
