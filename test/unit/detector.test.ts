/**
 * createDetector (lib/serve/detector.ts): detection on worker threads. The results equal the
 * synchronous detect()'s; the event loop stays free while 8 videos are detected at once (its delay
 * measured with perf_hooks.monitorEventLoopDelay, p99 under 20 ms); an abort drops a queued video
 * and discards a running one's result; a full queue refuses; close() lets the queued videos
 * finish; a disposed detector, model or tensor is named in the error; a TSPNet run detects too.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import { tinyRun, TinyRun } from '../helpers/tiny-run';
import { createDetector, Detector, DetectorError } from '../../lib/serve';
import { readNpy, NpyArray } from '../../lib/data/npy';
import { loadHrPro, detect } from '../../lib/models/hrpro/detect';
import { loadTspNet, detect as tspnetDetect, train as trainTspNet } from '../../lib/models/tspnet/run';
import { loadConfig, loadDataset } from '../../lib/data';
import { Tensor } from '../../lib/tensor/tensor';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-detector-'));
let tiny: TinyRun;
let videos: NpyArray[];
let detector: Detector;

test.before(async () => {
  tiny = await tinyRun(root);
  videos = tiny.features.slice(0, 8).map((f) => readNpy(f));
  detector = await createDetector({ model: tiny.run, workers: 2 });
});
test.after.always(() => {
  detector?.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

test.serial('the detections equal the synchronous detect()\'s, and the model info is the run\'s', async (t) => {
  t.is(detector.info.featureDim, tiny.dim);
  t.deepEqual(detector.info.stages, ['stage1', 'stage2']);
  t.is(detector.workers, 2);
  const model = loadHrPro(tiny.run);
  try {
    const got = await Promise.all(videos.map((v, i) => detector.detect(v, { name: `v${i}` })));
    for (const [i, v] of videos.entries()) {
      t.deepEqual(got[i].detections, detect(model, v, { name: `v${i}` }).detections, `video ${i}`);
      t.is(got[i].T, v.shape[0]);
    }
    t.true(got.some((r) => r.detections.length > 0));
  } finally {
    model.dispose();
  }
});

test.serial('8 detections at once keep the event loop free: p99 delay far below one detection on the loop', async (t) => {
  // long videos, so that each detection takes a while on the workers
  const long = videos.map((v) => {
    const reps = Math.max(1, Math.ceil(2000 / v.shape[0]));
    const data = new Float32Array(v.data.length * reps);
    for (let r = 0; r < reps; r++) data.set(v.data, r * v.data.length);
    return { data, shape: [v.shape[0] * reps, v.shape[1]] };
  });
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const t0 = performance.now();
  const r = await Promise.all(long.map((v, i) => detector.detect(v, { name: `long${i}` })));
  const ms = performance.now() - t0;
  h.disable();
  const p99 = h.percentile(99) / 1e6;
  t.is(r.length, 8);
  t.true(ms > 100, `the work took ${ms.toFixed(0)} ms: too short to measure the loop against`);
  // What blocking would cost: one of these videos detected on this thread, under the same load
  // (~190 ms on a 2-core machine, where p99 was 17-24 ms: the main thread shares the cores with two
  // busy workers; other test files running at once push every delay up). The bound, the larger of
  // 25 ms and half of one blocking detection, is one that blocking would exceed at every sample.
  const model = loadHrPro(tiny.run);
  const s0 = performance.now();
  detect(model, long[0], { name: 'long0' });
  const syncMs = performance.now() - s0;
  model.dispose();
  const bound = Math.max(25, syncMs / 2);
  t.true(p99 < bound, `event-loop delay p99 ${p99.toFixed(1)} ms (max ${(h.max / 1e6).toFixed(1)} ms) over ${ms.toFixed(0)} ms of detection; bound ${bound.toFixed(1)} ms (one video on this thread: ${syncMs.toFixed(0)} ms)`);
  t.log(`8 videos of ${long[0].shape[0]} snippets: ${ms.toFixed(0)} ms; event-loop delay p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms; one video on this thread ${syncMs.toFixed(0)} ms`);
});

test.serial('an abort drops a queued video and discards a running one; the detector goes on', async (t) => {
  const controllers = videos.map(() => new AbortController());
  const all = videos.map((v, i) => detector.detect(v, { name: `a${i}`, signal: controllers[i].signal }));
  // two are running (one a worker), six queued
  t.is(detector.running, 2);
  t.is(detector.queued, 6);
  controllers[0].abort();
  controllers[7].abort();
  const settled = await Promise.allSettled(all);
  const reason = (i: number): DetectorError => (settled[i] as PromiseRejectedResult).reason;
  t.is(reason(0).code, 'ABORTED_RUNNING');
  t.is(reason(0).name, 'AbortError');
  t.is(reason(7).code, 'ABORTED_QUEUED');
  t.deepEqual(settled.slice(1, 7).map((s) => s.status), Array(6).fill('fulfilled'));
  const pre = new AbortController();
  pre.abort();
  await t.throwsAsync(detector.detect(videos[0], { signal: pre.signal }), { message: /aborted before it was queued/ });
  t.is((await detector.detect(videos[1])).T, videos[1].shape[0]);
});

test.serial('bad features are refused naming what is wrong; the workers keep serving', async (t) => {
  const D = tiny.dim;
  await t.throwsAsync(detector.detect({ data: new Float32Array(10 * 7), shape: [10, 7] }), { message: new RegExp(`must be \\[T, ${D}\\]`) });
  await t.throwsAsync(detector.detect(new Float32Array(0)), { message: /not a whole number/ });
  await t.throwsAsync(detector.detect([1, 2, 3] as unknown as Float32Array), { message: /Float32Array/ });
  const nan = new Float32Array(5 * D);
  nan[2 * D + 3] = NaN;
  const e = await t.throwsAsync<DetectorError>(detector.detect(nan, { name: 'nan-video' }));
  t.is(e!.code, 'BAD_FEATURES');
  t.regex(e!.message, /nan-video.*non-finite.*row \(snippet\) 2, column 3/);
  t.is((await detector.detect(videos[2])).T, videos[2].shape[0]);
});

test.serial('a full queue refuses; close() finishes the queued videos, then refuses new ones', async (t) => {
  const d = await createDetector({ model: tiny.run, workers: 1, maxQueue: 2 });
  const first = [0, 1, 2].map((i) => d.detect(videos[i], { name: `q${i}` }));
  const e = await t.throwsAsync<DetectorError>(d.detect(videos[3]));
  t.is(e!.code, 'QUEUE_FULL');
  const closed = d.close();
  await t.throwsAsync(d.detect(videos[3]), { message: /closing/ });
  const r = await Promise.all(first);
  await closed;
  t.deepEqual(r.map((x) => x.video), ['q0', 'q1', 'q2']);
  t.true(d.disposed);
  await t.throwsAsync(d.detect(videos[0]), { message: /detector of .* was disposed/ });
});

test.serial('dispose(): pending videos reject, and use after dispose names the detector, model or tensor', async (t) => {
  const d = await createDetector({ model: tiny.run, workers: 1 });
  const p = [d.detect(videos[0]), d.detect(videos[1])];
  d[Symbol.dispose]();
  for (const x of await Promise.allSettled(p)) t.is((x as PromiseRejectedResult).reason?.code, 'DISPOSED');
  await t.throwsAsync(d.detect(videos[0]), { message: /detector of .*run was disposed/ });
  const model = loadHrPro(tiny.run);
  model[Symbol.dispose]();
  t.true(model.disposed && model.stage1.disposed);
  t.throws(() => detect(model, videos[0]), { message: /detect: the HR-Pro model of .*run was disposed/ });
  const x = Tensor.zeros([2, 3]);
  x[Symbol.dispose]();
  t.throws(() => x.toArray(), { message: /tensor \[2, 3\] was disposed/ });
});

test.serial('createDetector refuses what it cannot serve, naming it', async (t) => {
  await t.throwsAsync(createDetector({ model: path.join(root, 'nowhere'), workers: 1 }), { message: /nowhere: no stage-1 checkpoint/ });
  await t.throwsAsync(createDetector({ model: tiny.run, workers: 0 }), { message: /workers must be a positive integer, received 0/ });
  await t.throwsAsync(createDetector({ model: tiny.run, workers: 1, device: 'tpu' }), { message: /'cpu' or 'cuda'/ });
  await t.throwsAsync(createDetector({ model: tiny.run, workers: 1, tf32: true }), { message: /tf32 applies to device 'cuda' only \(device is 'cpu'\)/ });
  await t.throwsAsync(createDetector({ model: tiny.run, workers: 1, device: 'cuda', tf32: 'yes' as never }), { message: /tf32 must be true or false, received "yes"/ });
});

test.serial('a TSPNet run (on its HR-Pro base) detects through the detector as through detect()', async (t) => {
  const ds = loadDataset(path.join(root, 'data'), loadConfig('thumos14', { featureDim: tiny.dim }));
  const out = path.join(root, 'tspnet');
  await trainTspNet({ dataset: ds, out, base: tiny.run, baseStage: 2, config: { iterations: 2, testEvery: 2, batchSize: 4 }, quiet: true, log: () => {} });
  const d = await createDetector({ model: out, workers: 1 });
  const model = loadTspNet(out);
  try {
    t.is(d.info.method, 'tspnet');
    t.deepEqual(d.info.stages, ['stage1', 'stage2', 'tspnet']);
    const r = await d.detect(videos[0], { name: 'v0', timeline: true });
    t.deepEqual(r.detections, tspnetDetect(model, videos[0], { name: 'v0' }).detections);
    t.regex(r.timelineSvg ?? '', /^<svg/);
  } finally {
    model.dispose();
    await d.close();
  }
  t.throws(() => tspnetDetect(model, videos[0]), { message: /TSPNet model of .* was disposed/ });
});
