/** Every differentiable op, by family. */
export * from './elementwise';
export * from './matmul';
export * from './reduce';
export * from './norm';
export * from './conv';
export * from './attention';
export * from './shape';
export * from './loss';
export * from './roi_align';
export * from './segment_iou';
