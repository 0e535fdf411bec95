/**
 * segment_iou.ts: the best temporal IoU of each segment with a set of target segments, as HR-Pro's
 * stage 2 computes it (SPEC §4; the reference's segments_iou): inter = min(e) - max(s),
 * union = len_a + len_b - inter, iou = inter / (union + 1e-6), non-positive values set to 0, then the
 * max over the targets. `maxSegmentIoU` is differentiable in the segments' starts and ends (the
 * regression loss learns through it); the gradient goes to the first best target, as torch.max's.
 * M x K is small (up to 1000 proposals x a video's reliable proposals), so this runs on the host.
 */
import { Tensor, shapeStr } from '../tensor/tensor';
import { record } from '../tensor/autograd';

const EPS = 1e-6;

export interface MaxIoU {
  /** [M] best IoU (0 when no target overlaps) */
  iou: Float32Array;
  /** [M] index of the first best target, -1 when there are no targets */
  target: Int32Array;
}

/** Plain best IoU of segments [M, 2] against targets [K, 2] (flat [start, end] pairs). */
export function maxSegmentIoUValues(segments: ArrayLike<number>, targets: ArrayLike<number>): MaxIoU {
  if (segments.length % 2 || targets.length % 2) throw new Error('maxSegmentIoU: segments and targets must hold [start, end] pairs');
  const M = segments.length / 2;
  const K = targets.length / 2;
  const iou = new Float32Array(M);
  const target = new Int32Array(M).fill(K ? 0 : -1);
  for (let m = 0; m < M; m++) {
    const s = segments[2 * m];
    const e = segments[2 * m + 1];
    let best = -Infinity;
    for (let k = 0; k < K; k++) {
      const ts = targets[2 * k];
      const te = targets[2 * k + 1];
      const inter = Math.min(e, te) - Math.max(s, ts);
      const union = e - s + (te - ts) - inter;
      let v = Math.fround(inter / (union + EPS));
      if (!(v > 0)) v = 0;
      if (v > best) {
        best = v;
        target[m] = k;
      }
    }
    iou[m] = K ? best : 0;
  }
  return { iou, target };
}

/** Differentiable best IoU of segments (start [M], end [M]) with fixed targets [K, 2]. */
export function maxSegmentIoU(start: Tensor, end: Tensor, targets: ArrayLike<number>): Tensor {
  if (start.ndim !== 1 || end.ndim !== 1 || start.shape[0] !== end.shape[0])
    throw new Error(`maxSegmentIoU: start and end must be [M] vectors of one length, received ${shapeStr(start.shape)} and ${shapeStr(end.shape)}`);
  const s = start.toArray();
  const e = end.toArray();
  const M = s.length;
  const seg = new Float32Array(2 * M);
  for (let m = 0; m < M; m++) {
    seg[2 * m] = s[m];
    seg[2 * m + 1] = e[m];
  }
  const { iou, target } = maxSegmentIoUValues(seg, targets);
  const out = Tensor.from(iou, [M], start.device);
  return record('maxSegmentIoU', out, [start, end], (g) => {
    const gv = g.toArray();
    const gs = new Float32Array(M);
    const ge = new Float32Array(M);
    for (let m = 0; m < M; m++) {
      const k = target[m];
      if (k < 0 || !(iou[m] > 0)) continue; // clamped to 0: no gradient
      const ts = targets[2 * k];
      const te = targets[2 * k + 1];
      const inter = Math.min(e[m], te) - Math.max(s[m], ts);
      const u = e[m] - s[m] + (te - ts) - inter + EPS;
      // d inter: -1 in s when s is the larger start, +1 in e when e is the smaller end
      const diS = s[m] > ts ? -1 : 0;
      const diE = e[m] < te ? 1 : 0;
      const duS = -1 - diS;
      const duE = 1 - diE;
      gs[m] = (gv[m] * (diS * u - inter * duS)) / (u * u);
      ge[m] = (gv[m] * (diE * u - inter * duE)) / (u * u);
    }
    return [Tensor.from(gs, [M], start.device), Tensor.from(ge, [M], start.device)];
  });
}
