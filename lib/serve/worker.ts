/**
 * worker.ts: one detector worker thread. Loads the run folder's model once (HR-Pro, or TSPNet
 * with its base, as `pstal detect` does), then answers detection jobs one at a time; an error of
 * a job (bad features, non-finite scores) is answered as that job's error and the worker goes on.
 */
import { parentPort, workerData } from 'worker_threads';
import * as fs from 'fs';
import { loadHrPro, detect as hrproDetect, HrProModel } from '../models/hrpro/detect';
import { loadTspNet, detect as tspnetDetect, TspNetRun } from '../models/tspnet/run';
import { tspnetPaths } from '../models/tspnet/checkpoint';
import { videoTimeline } from '../plot/video';
import { timelineSvg, TimelineInput } from '../plot/timeline';
import type { Detection } from '../eval/detection';
import type { DetectResult, JobRequest, ModelInfo, WorkerInit, WorkerMessage } from './protocol';
import { version } from '../cli/version';
import { setTf32 } from '../runtime/backend';

const port = parentPort!;
const post = (m: WorkerMessage): void => port.postMessage(m);

type Loaded = { kind: 'hrpro'; m: HrProModel } | { kind: 'tspnet'; m: TspNetRun };

function load(init: WorkerInit): { loaded: Loaded; info: ModelInfo } {
  if (init.tf32 !== undefined) setTf32(init.tf32); // this thread's own setting (the CUDA backend keeps one per thread)
  if (fs.existsSync(tspnetPaths(init.model).best)) {
    const m = loadTspNet(init.model, { device: init.device });
    const base = m.base ? ['stage1', ...(m.baseStage === 2 ? ['stage2'] : [])] : [];
    return {
      loaded: { kind: 'tspnet', m },
      info: {
        method: 'tspnet', run: m.run, classNames: m.classNames, featureDim: m.featureDim, stages: [...base, 'tspnet'],
        secondsPerSnippet: m.cfg.snippetFrames / m.cfg.featureFps, version: version(), needsProposals: !m.base,
      },
    };
  }
  const m = loadHrPro(init.model, { device: init.device });
  return {
    loaded: { kind: 'hrpro', m },
    info: {
      method: 'hrpro', run: m.run, classNames: m.classNames, featureDim: m.featureDim, stages: m.stage2 ? ['stage1', 'stage2'] : ['stage1'],
      secondsPerSnippet: m.cfg1.secondsPerSnippet, version: version(), needsProposals: false,
    },
  };
}

function run(loaded: Loaded, info: ModelInfo, job: JobRequest): DetectResult {
  const features = { data: job.data, shape: job.shape };
  let detections: Detection[];
  let scores: { T: number; casP: Float32Array; bkg: Float32Array } | undefined;
  if (loaded.kind === 'hrpro') {
    const r = hrproDetect(loaded.m, features, { name: job.name });
    detections = r.detections;
    scores = r.scores;
  } else {
    const r = tspnetDetect(loaded.m, features, { name: job.name });
    detections = r.detections;
    scores = r.scores;
  }
  if (job.top !== undefined) detections = detections.slice(0, job.top);
  const T = job.shape[0];
  const result: DetectResult = { video: job.name, T, detections };
  if (job.timeline) {
    const title = `${job.name}: ${detections.length} detection(s), ${info.method === 'hrpro' ? 'HR-Pro' : 'TSPNet'} ${info.stages.join(' + ')}`;
    const input: TimelineInput = scores
      ? videoTimeline(title, { detections, scores }, info.classNames, info.secondsPerSnippet)
      : { title, secondsPerStep: info.secondsPerSnippet, curves: [{ name: 'video', values: new Float32Array(T) }], detections };
    result.timelineSvg = timelineSvg(input);
  }
  return result;
}

let state: { loaded: Loaded; info: ModelInfo } | undefined;
try {
  state = load(workerData as WorkerInit);
  post({ type: 'ready', info: state.info });
} catch (e) {
  post({ type: 'init-error', message: (e as Error).message });
}
port.on('message', (job: JobRequest) => {
  if (!state) return;
  try {
    post({ type: 'result', id: job.id, result: run(state.loaded, state.info, job) });
  } catch (e) {
    post({ type: 'error', id: job.id, message: (e as Error).message });
  }
});
