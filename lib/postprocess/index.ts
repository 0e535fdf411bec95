/**
 * Post-processing (SPEC §2 stage-1 inference, §5 ABA): candidate proposals, soft-NMS and
 * boundary adaptation, on native CPU kernels.
 */
export type { Proposal } from './types';
export { numpyArange, defaultThresholds } from './thresholds';
export type { ProposalOptions } from './proposals';
export { defaultProposalOptions, upsampleLinear, generateProposals, predictClasses } from './proposals';
export type { SoftNmsOptions } from './nms';
export { softNms } from './nms';
export type { BoundaryAdaptationOptions } from './boundary';
export { boundaryAdaptation } from './boundary';
