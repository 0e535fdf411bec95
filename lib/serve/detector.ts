/**
 * detector.ts: detection off the event loop. createDetector({ model: RUN }) starts a pool of
 * worker threads (worker.ts), each loading the run's model once; detect(features) queues a video
 * and returns a Promise of its detections, so a server's event loop keeps answering while the
 * native kernels run on the workers. The synchronous detect() of lib/models stays for scripts.
 *
 * The CPU kernels' thread pool is one per process and shared by every worker (native/common/
 * parallel.cc: one parallel job at a time). With several workers the pool is set to one thread
 * (kernelThreads), so that the workers run videos side by side instead of taking turns on it.
 */
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { PACKAGE_ROOT, setNumThreads, getNumThreads } from '../runtime/native';
import { checkDevice } from '../runtime/backend';
import type { DetectResult, JobRequest, ModelInfo, WorkerInit, WorkerMessage } from './protocol';
import '../util/dispose';

export type { DetectResult, ModelInfo } from './protocol';

export interface DetectorOptions {
  /** a run folder trained by `pstal run` / `pstal train` (HR-Pro) or `pstal train --method tspnet` */
  model: string;
  /** worker threads, each with its own copy of the model (default: the cores, os.availableParallelism) */
  workers?: number;
  /** 'cpu' (default) or 'cuda' */
  device?: string;
  /** videos waiting beyond the running ones; one more is refused with code 'QUEUE_FULL' (default: no limit) */
  maxQueue?: number;
  /**
   * threads of the CPU kernels' pool, process-wide (setNumThreads): default 1 when workers > 1
   * (the workers share the one pool), else left as it is
   */
  kernelThreads?: number;
  /**
   * device 'cuda' only: TF32 tensor cores for the workers' GEMMs. TF32 is a per-thread setting
   * (setTf32 on this thread does not reach the workers); without this option each worker starts
   * from PSTAL_TF32.
   */
  tf32?: boolean;
}

export interface DetectOptions {
  /** aborting drops a queued video; a running one's result is discarded (its promise rejects at once) */
  signal?: AbortSignal;
  /** the video's name in the result (default 'video') */
  name?: string;
  /** keep the N best detections */
  top?: number;
  /** also draw the timeline as SVG (lib/plot/timeline.ts) */
  timeline?: boolean;
}

/** Why a detection did not happen: `code` says which (the server maps it to an HTTP status). */
export class DetectorError extends Error {
  constructor(
    readonly code: 'QUEUE_FULL' | 'ABORTED_QUEUED' | 'ABORTED_RUNNING' | 'CLOSED' | 'DISPOSED' | 'WORKER_EXITED' | 'BAD_FEATURES' | 'DETECT_FAILED',
    message: string,
  ) {
    super(message);
    this.name = code.startsWith('ABORTED') ? 'AbortError' : 'DetectorError';
  }
}

interface Pending {
  job: JobRequest;
  resolve(r: DetectResult): void;
  reject(e: Error): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Slot {
  worker: Worker;
  running: Pending | null;
}

/** The worker's entry: the compiled worker.js beside this file, or worker.ts through ts-node. */
function spawn(init: WorkerInit): Worker {
  if (__filename.endsWith('.js')) return new Worker(path.join(__dirname, 'worker.js'), { workerData: init });
  const source =
    `require(${JSON.stringify(require.resolve('ts-node'))}).register({ transpileOnly: true, project: ${JSON.stringify(path.join(PACKAGE_ROOT, 'tsconfig.json'))} });\n` +
    `require(${JSON.stringify(path.join(__dirname, 'worker.ts'))});`;
  return new Worker(source, { eval: true, workerData: init });
}

function positiveInt(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`createDetector: ${what} must be a positive integer, received ${JSON.stringify(v)}`);
  return v as number;
}

export class Detector {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private drained: (() => void) | null = null;
  private disposedFlag = false;
  private readonly init: WorkerInit;
  private readonly maxQueue: number;

  /** Use createDetector(), which waits for every worker to load the model. */
  private constructor(readonly info: ModelInfo, init: WorkerInit, maxQueue: number) {
    this.init = init;
    this.maxQueue = maxQueue;
  }

  /** @internal */
  static async start(o: DetectorOptions): Promise<Detector> {
    if (typeof o?.model !== 'string' || !o.model) throw new Error(`createDetector: model must be a run folder, received ${JSON.stringify(o?.model)}`);
    const workers = o.workers === undefined ? (os.availableParallelism?.() ?? os.cpus().length) : positiveInt(o.workers, 'workers');
    const maxQueue = o.maxQueue === undefined ? Infinity : o.maxQueue === 0 ? 0 : positiveInt(o.maxQueue, 'maxQueue');
    const init: WorkerInit = { model: path.resolve(o.model), device: checkDevice(o.device ?? 'cpu') };
    if (o.tf32 !== undefined) {
      if (typeof o.tf32 !== 'boolean') throw new Error(`createDetector: tf32 must be true or false, received ${JSON.stringify(o.tf32)}`);
      if (init.device !== 'cuda') throw new Error(`createDetector: tf32 applies to device 'cuda' only (device is '${init.device}')`);
      init.tf32 = o.tf32;
    }
    if (o.kernelThreads !== undefined) setNumThreads(positiveInt(o.kernelThreads, 'kernelThreads'));
    else if (workers > 1 && getNumThreads() !== 1) setNumThreads(1);
    const started = Array.from({ length: workers }, () => Detector.startWorker(init));
    const results = await Promise.allSettled(started);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      for (const r of results) if (r.status === 'fulfilled') void r.value.worker.terminate();
      throw failed.reason;
    }
    const ok = results as PromiseFulfilledResult<{ worker: Worker; info: ModelInfo }>[];
    if (ok[0].value.info.needsProposals) {
      for (const r of ok) void r.value.worker.terminate();
      throw new Error(`createDetector: ${init.model} is a TSPNet run trained on proposals files, not on an HR-Pro run: it needs each video's base proposals, which the detector cannot make; serve its HR-Pro base, or a TSPNet run trained with --base`);
    }
    const d = new Detector(ok[0].value.info, init, maxQueue);
    for (const r of ok) d.adopt(r.value.worker);
    return d;
  }

  private static startWorker(init: WorkerInit): Promise<{ worker: Worker; info: ModelInfo }> {
    return new Promise((resolve, reject) => {
      const worker = spawn(init);
      const onExit = (code: number): void => reject(new Error(`createDetector: a worker exited (code ${code}) while loading ${init.model}`));
      worker.once('error', (e) => reject(new Error(`createDetector: a worker failed while loading ${init.model}: ${e.message}`)));
      worker.once('exit', onExit);
      worker.once('message', (m: WorkerMessage) => {
        worker.off('exit', onExit);
        if (m.type === 'ready') resolve({ worker, info: m.info });
        else {
          void worker.terminate();
          reject(new Error(m.type === 'init-error' ? m.message : `createDetector: unexpected first message from a worker: ${m.type}`));
        }
      });
    });
  }

  private adopt(worker: Worker): void {
    const slot: Slot = { worker, running: null };
    this.slots.push(slot);
    worker.on('message', (m: WorkerMessage) => this.onMessage(slot, m));
    worker.on('error', (e) => this.onExit(slot, `failed: ${e.message}`));
    worker.on('exit', (code) => this.onExit(slot, `exited (code ${code})`));
    worker.unref(); // an idle detector does not keep the process alive; a queued job holds it (below)
  }

  private onMessage(slot: Slot, m: WorkerMessage): void {
    const p = slot.running;
    slot.running = null;
    slot.worker.unref();
    if (p && (m.type === 'result' || m.type === 'error') && m.id === p.job.id) {
      p.signal?.removeEventListener('abort', p.onAbort!);
      if (m.type === 'result') p.resolve(m.result);
      else p.reject(new DetectorError(/non-finite|beyond|features must be|rows/.test(m.message) ? 'BAD_FEATURES' : 'DETECT_FAILED', m.message));
    }
    this.pump();
  }

  /** A worker that died (a native crash cannot be caught, but an exception or OOM of the isolate can): its video fails, a new worker takes its place. */
  private onExit(slot: Slot, how: string): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    const p = slot.running;
    slot.running = null;
    if (p) {
      p.signal?.removeEventListener('abort', p.onAbort!);
      p.reject(new DetectorError('WORKER_EXITED', `detect: ${p.job.name}: the worker running it ${how}`));
    }
    if (this.disposedFlag || this.closing) return this.pump();
    Detector.startWorker(this.init).then(
      (w) => {
        if (this.disposedFlag) void w.worker.terminate();
        else {
          this.adopt(w.worker);
          this.pump();
        }
      },
      () => this.pump(),
    );
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.running) continue;
      const p = this.queue.shift();
      if (!p) break;
      slot.running = p;
      slot.worker.ref();
      // the features are copied to the worker (structured clone); the caller keeps its array
      slot.worker.postMessage(p.job);
    }
    if (this.drained && this.queue.length === 0 && this.slots.every((s) => !s.running)) this.drained();
  }

  /** Videos waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  /** Videos on the workers now. */
  get running(): number {
    return this.slots.filter((s) => s.running).length;
  }

  get workers(): number {
    return this.slots.length;
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /**
   * Detections in one video's features [T, D] (a Float32Array of T * D values, or { data, shape }).
   * Rejects with a DetectorError: QUEUE_FULL, ABORTED_QUEUED / ABORTED_RUNNING (signal), CLOSED,
   * DISPOSED, BAD_FEATURES (shape or values), DETECT_FAILED, WORKER_EXITED.
   */
  detect(features: Float32Array | { data: Float32Array; shape: number[] }, options: DetectOptions = {}): Promise<DetectResult> {
    try {
      return this.enqueue(features, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private enqueue(features: Float32Array | { data: Float32Array; shape: number[] }, options: DetectOptions): Promise<DetectResult> {
    const name = options.name ?? 'video';
    if (this.disposedFlag) throw new DetectorError('DISPOSED', `detect: the detector of ${this.info.run} was disposed`);
    if (this.closing) throw new DetectorError('CLOSED', `detect: the detector of ${this.info.run} is closing and takes no new videos`);
    const D = this.info.featureDim;
    const data = features instanceof Float32Array ? features : features?.data;
    if (!(data instanceof Float32Array)) throw new DetectorError('BAD_FEATURES', `detect: ${name}: features must be a Float32Array or { data: Float32Array, shape: [T, ${D}] }`);
    if (!(features instanceof Float32Array) && !(Array.isArray(features.shape) && features.shape.length === 2 && features.shape[1] === D && features.shape[0] * D === data.length))
      throw new DetectorError('BAD_FEATURES', `detect: ${name}: features must be [T, ${D}] for this model, received shape ${JSON.stringify(features.shape)} with ${data.length} values`);
    if (data.length === 0 || data.length % D !== 0) throw new DetectorError('BAD_FEATURES', `detect: ${name}: ${data.length} feature values are not a whole number (>= 1) of rows of D = ${D}`);
    if (options.top !== undefined && !(Number.isInteger(options.top) && options.top >= 1)) throw new DetectorError('BAD_FEATURES', `detect: top must be a positive integer, received ${options.top}`);
    const signal = options.signal;
    if (signal?.aborted) throw new DetectorError('ABORTED_QUEUED', `detect: ${name}: aborted before it was queued`);
    const idle = this.slots.some((s) => !s.running);
    if (!idle && this.queue.length >= this.maxQueue) throw new DetectorError('QUEUE_FULL', `detect: the queue is full (${this.maxQueue} videos waiting, ${this.running} running)`);
    return new Promise<DetectResult>((resolve, reject) => {
      const p: Pending = { job: { id: this.nextId++, data, shape: [data.length / D, D], name, top: options.top, timeline: options.timeline }, resolve, reject, signal };
      if (signal) {
        p.onAbort = () => {
          const q = this.queue.indexOf(p);
          if (q >= 0) {
            this.queue.splice(q, 1);
            reject(new DetectorError('ABORTED_QUEUED', `detect: ${name}: aborted while queued (dropped)`));
            if (this.drained) this.pump();
            return;
          }
          // running: the worker finishes it, its result is discarded
          p.resolve = () => {};
          p.reject = () => {};
          reject(new DetectorError('ABORTED_RUNNING', `detect: ${name}: aborted while running (its result will be discarded)`));
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.pump();
    });
  }

  /**
   * Takes no new videos (detect rejects with CLOSED), lets the queued and running ones finish, then
   * stops the workers. Idempotent.
   */
  close(): Promise<void> {
    if (this.disposedFlag) return Promise.resolve();
    this.closing ??= new Promise<void>((resolve) => {
      this.drained = resolve;
      this.pump();
    }).then(() => this.dispose());
    return this.closing;
  }

  /** Stops the workers now: queued and running videos reject with DISPOSED. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    const err = (p: Pending): void => {
      p.signal?.removeEventListener('abort', p.onAbort!);
      p.reject(new DetectorError('DISPOSED', `detect: ${p.job.name}: the detector of ${this.info.run} was disposed`));
    };
    for (const p of this.queue.splice(0)) err(p);
    for (const s of this.slots.splice(0)) {
      if (s.running) err(s.running);
      void s.worker.terminate();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Starts the workers and waits until each has loaded the model (an error names what failed). */
export function createDetector(options: DetectorOptions): Promise<Detector> {
  return Detector.start(options);
}
