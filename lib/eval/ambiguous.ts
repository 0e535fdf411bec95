/**
 * THUMOS14 ambiguous segments (Ambiguous_test.txt, SPEC sections 1 and 2): detections that overlap
 * an ambiguous segment of their video are removed before scoring. The reference measures the overlap
 * on whole seconds: the integer set int(s)..int(e)-1 of the detection against round(a)..round(b)-1
 * of the ambiguous segment, where int() truncates toward zero and round() is Python's round half to
 * even. Any shared integer second means the detection is dropped.
 */
import type { Detection } from '../formats/results';
import { readAmbiguous } from '../formats/splits';

/** Python's round(x) for a float: nearest integer, exact halves to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f; // exact for |x| < 2^52
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Reads Ambiguous_test.txt: lib/formats/splits.ts. */
export const loadAmbiguous = readAmbiguous;

/** The detections of `video` that share no whole second with any of its ambiguous segments. */
export function filterAmbiguous(video: string, dets: Detection[], ambiguous: Map<string, [number, number][]>): Detection[] {
  const amb = ambiguous.get(video);
  if (!amb || amb.length === 0) return dets;
  const ranges = amb.map(([a, b]) => [roundHalfEven(a), roundHalfEven(b)] as const);
  return dets.filter((d) => {
    const s = Math.trunc(d.segment[0]);
    const e = Math.trunc(d.segment[1]);
    // range(s, e) and range(ga, gb) share an integer iff max(s, ga) < min(e, gb)
    for (const [ga, gb] of ranges) if (Math.max(s, ga) < Math.min(e, gb)) return false;
    return true;
  });
}
