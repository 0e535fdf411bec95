/**
 * thresholds.ts: the stage-1 threshold lists (SPEC §2), built exactly as the reference builds
 * them with numpy (cfgs: act_thresh_cas = np.arange(0.0, 0.25, 0.025), act_thresh_agnostic =
 * np.arange(0.5, 0.725, 0.025)). The float64 values matter: a cas value of 0.075 is below the
 * threshold 0.07500000000000001 that numpy produces, so runs and scores depend on them.
 */

/**
 * numpy.arange(start, stop, step) for floats: length ceil((stop - start) / step); element 0 is
 * start, element 1 is start + step, element i >= 2 is start + i * ((start + step) - start)
 * (numpy fills from the first two elements).
 */
export function numpyArange(start: number, stop: number, step: number): number[] {
  for (const [name, v] of [['start', start], ['stop', stop], ['step', step]] as const) {
    if (!Number.isFinite(v)) throw new Error(`numpyArange: ${name} must be finite, received ${v}`);
  }
  if (step === 0) throw new Error('numpyArange: step must not be 0');
  const length = Math.max(0, Math.ceil((stop - start) / step));
  if (length > 1e7) throw new Error(`numpyArange: ${length} values is too many`);
  const out: number[] = [];
  if (length === 0) return out;
  out.push(start);
  if (length === 1) return out;
  const next = start + step;
  out.push(next);
  const delta = next - start;
  for (let i = 2; i < length; i++) out.push(start + i * delta);
  return out;
}

/** The reference's 10 cas thresholds (0 .. 0.225) and 9 agnostic thresholds (0.5 .. 0.7). */
export function defaultThresholds(): { cas: number[]; agnostic: number[] } {
  return { cas: numpyArange(0.0, 0.25, 0.025), agnostic: numpyArange(0.5, 0.725, 0.025) };
}
