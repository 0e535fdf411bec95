/**
 * protocol.ts: the messages between the detector (detector.ts, the caller's thread) and its worker
 * threads (worker.ts), and what a detection returns. Plain data only: it crosses threads by
 * structured clone.
 */
import type { Detection } from '../eval/detection';

/** What a detector serves: the run folder's model, as loaded by each worker. */
export interface ModelInfo {
  /** 'hrpro' (stage 1, and stage 2 when the run has one) or 'tspnet' (the plug-in and its base) */
  method: 'hrpro' | 'tspnet';
  run: string;
  classNames: string[];
  /** feature width D: a video is [T, D] */
  featureDim: number;
  /** the stages a detection runs, in order ('stage1', 'stage2', 'tspnet') */
  stages: string[];
  /** seconds a feature row (snippet) spans */
  secondsPerSnippet: number;
  /** pstal's version */
  version: string;
  /** whether a detection needs base proposals given with it (a TSPNet run trained on proposals files) */
  needsProposals: boolean;
}

export interface WorkerInit {
  model: string;
  device: string;
  /** device 'cuda': the worker thread's TF32 setting (setTf32), when the caller chose one */
  tf32?: boolean;
}

export interface JobRequest {
  id: number;
  data: Float32Array;
  shape: [number, number];
  name: string;
  top?: number;
  /** also draw the timeline (lib/plot/timeline.ts) as SVG */
  timeline?: boolean;
}

export interface DetectResult {
  video: string;
  /** feature rows (snippets) of the video */
  T: number;
  /** best first, segments in seconds inside the video (what `pstal detect` writes) */
  detections: Detection[];
  /** the timeline picture, when asked for */
  timelineSvg?: string;
}

export type WorkerMessage =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; result: DetectResult }
  | { type: 'error'; id: number; message: string };
