/**
 * types.ts: the proposal record shared by the post-processing steps, and its conversion to the
 * native layout (Float64Array rows of [start, end, class, score], the reference's list layout).
 */

/** A temporal proposal / detection: times in seconds, class index into the class list. */
export interface Proposal {
  classIndex: number;
  score: number;
  start: number;
  end: number;
}

/** Packs proposals into [start, end, class, score] rows, checking each field. */
export function toRows(op: string, proposals: readonly Proposal[]): Float64Array {
  if (!Array.isArray(proposals)) throw new Error(`${op}: proposals must be an array`);
  const rows = new Float64Array(proposals.length * 4);
  const finite = (i: number, field: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${op}: proposals[${i}].${field} must be a finite number, received ${v}`);
  };
  proposals.forEach((p, i) => {
    if (p === null || typeof p !== 'object') throw new Error(`${op}: proposals[${i}] is not an object`);
    const { start, end, classIndex, score } = p;
    finite(i, 'start', start); // (checked one by one: a list of [field, value] pairs per proposal
    finite(i, 'end', end); //     cost more than the soft-NMS of a long video)
    finite(i, 'score', score);
    if (!Number.isSafeInteger(classIndex) || classIndex < 0) {
      throw new Error(`${op}: proposals[${i}].classIndex must be a non-negative integer, received ${classIndex}`);
    }
    if (end < start) throw new Error(`${op}: proposals[${i}] ends (${end}) before it starts (${start})`);
    rows[4 * i] = start;
    rows[4 * i + 1] = end;
    rows[4 * i + 2] = classIndex;
    rows[4 * i + 3] = score;
  });
  return rows;
}

export function fromRows(rows: Float64Array): Proposal[] {
  const out: Proposal[] = new Array(rows.length / 4);
  for (let i = 0; i < out.length; i++) {
    out[i] = { classIndex: rows[4 * i + 2], score: rows[4 * i + 3], start: rows[4 * i], end: rows[4 * i + 1] };
  }
  return out;
}
