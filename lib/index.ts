/**
 * pstal: point-supervised temporal action localization (HR-Pro, TSPNet) on native kernels.
 * The public API: tensors and autograd, ops, nn layers and Adam, checkpoints, and the models.
 */
export { Tensor, tidy, noGrad, setDetectAnomaly } from './tensor/tensor';
export type { Shape } from './tensor/tensor';
export { backward, zeroGrad, DeferredBackward } from './tensor/autograd';
export * as ops from './ops';
export * as nn from './nn';
export { Rng } from './util/rng';
export { saveSafetensors, loadSafetensors } from './io/safetensors';
export { readTorchCheckpoint } from './io/torch';
export type { TorchCheckpoint, TorchTensor, TorchDtype } from './io/torch';
export { importHrPro, readStateDict, classNamesOf } from './models/hrpro/import_checkpoint';
export type { ImportOptions, ImportResult } from './models/hrpro/import_checkpoint';
export { evaluateRun } from './models/hrpro/evaluate_run';
export type { EvaluateRunOptions, EvaluateRunResult } from './models/hrpro/evaluate_run';
export { callCounts, cudaAvailable, cudaDeviceInfo, cudaSynchronize, resetCallCounts, setTf32 } from './runtime/backend';
export type { CallCounts, CudaDeviceInfo } from './runtime/backend';
export type { Device } from './runtime/backend';
export * as native from './runtime/native';
export * as hrpro from './models/hrpro';
export * as tspnet from './models/tspnet';
export * as data from './data';
export * as formats from './formats';
export * as postprocess from './postprocess';
export * as evaluation from './eval';
export { ProgressBar, progressCallback } from './util/progress';
export type { OnProgress, ProgressOptions } from './util/progress';
export * as plot from './plot';
export * as serve from './serve';
export { createDetector } from './serve';
