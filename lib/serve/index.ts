export { createDetector, Detector, DetectorError } from './detector';
export type { DetectorOptions, DetectOptions, DetectResult, ModelInfo } from './detector';
