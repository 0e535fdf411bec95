/**
 * proposals.ts: stage 1's ranked proposals (RUN/proposals.json, lib/formats/proposals.ts) converted
 * into stage 2's inputs in snippets (seconds x 25 / 16 rounded to 3 decimals, as the reference's
 * dataset does).
 */
import type { PackedSpans, TrainProposals } from '../../formats/proposals';

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** One training video's stage-2 inputs, in snippets: proposals [M, 2] (PP then NP) and the RP targets [K, 2]. */
export function trainingProposals(r: TrainProposals | undefined, snippetsPerSecond: number): { proposals: Float32Array; targets: Float32Array } {
  if (!r) return { proposals: new Float32Array(0), targets: new Float32Array(0) };
  const pp = Object.values(r.PP);
  const n = pp.reduce((k, a) => k + a.length / 3, 0) + r.NP.length / 3;
  const proposals = new Float32Array(2 * n);
  let j = 0;
  for (const a of pp) {
    for (let i = 0; i < a.length; i += 3) {
      proposals[j++] = round3(a[i] * snippetsPerSecond);
      proposals[j++] = round3(a[i + 1] * snippetsPerSecond);
    }
  }
  for (let i = 0; i < r.NP.length; i += 3) {
    proposals[j++] = r.NP[i];
    proposals[j++] = r.NP[i + 1];
  }
  const targets: number[] = [];
  for (const spans of Object.values(r.RP)) for (const sp of spans) if (sp) targets.push(round3(sp[0] * snippetsPerSecond), round3(sp[1] * snippetsPerSecond));
  return { proposals, targets: Float32Array.from(targets) };
}

/** A test video's PP in snippets with their class and OIC score. */
export function testProposals(pp: Record<string, PackedSpans> | undefined, classNames: string[], snippetsPerSecond: number): { proposals: Float32Array; classIndex: Int32Array; score: Float32Array } {
  const byClass = Object.entries(pp ?? {});
  const n = byClass.reduce((k, [, a]) => k + a.length / 3, 0);
  const proposals = new Float32Array(2 * n);
  const classIndex = new Int32Array(n);
  const score = new Float32Array(n);
  let j = 0;
  for (const [label, a] of byClass) {
    const c = classNames.indexOf(label);
    if (c < 0) throw new Error(`stage 2: proposals.json names class '${label}', which is not in the dataset's classes`);
    for (let i = 0; i < a.length; i += 3, j++) {
      proposals[2 * j] = round3(a[i] * snippetsPerSecond);
      proposals[2 * j + 1] = round3(a[i + 1] * snippetsPerSecond);
      classIndex[j] = c;
      score[j] = a[i + 2];
    }
  }
  return { proposals, classIndex, score };
}
