/**
 * The addon under Node worker threads, as a server would use it: every worker loads it into its
 * own isolate while they share the process's thread pool and block cache. Three workers run the
 * same ops at once (GEMMs large enough for the pool, attention with dropout forward and backward)
 * and must each get the main thread's bits. Before the class of NativeBuffer was kept per env, a
 * buffer made in one worker failed the ops' type check in another ("must be a NativeBuffer"), and
 * the pool and the cache were shared without a lock.
 */
import test from 'ava';
import * as path from 'path';
import { Worker } from 'worker_threads';

const ROOT = path.resolve(__dirname, '..', '..');

// The work, as source: run in the main thread and in each worker; returns a digest of its outputs.
const WORK = `
  const ops = require(${JSON.stringify(path.join(ROOT, 'lib', 'ops'))});
  const { Tensor, tidy } = require(${JSON.stringify(path.join(ROOT, 'lib', 'tensor', 'tensor'))});
  const { backward } = require(${JSON.stringify(path.join(ROOT, 'lib', 'tensor', 'autograd'))});
  const { Rng } = require(${JSON.stringify(path.join(ROOT, 'lib', 'util', 'rng'))});
  const crypto = require('crypto');
  const h = crypto.createHash('sha256');
  const rng = new Rng(5);
  for (let round = 0; round < 20; round++)
    tidy(() => {
      const a = Tensor.from(rng.uniformArray(300 * 256, -1, 1), [300, 256]);
      const w = Tensor.from(rng.uniformArray(256 * 256, -1, 1), [256, 256]);
      const y = ops.matmul(a, w, { transB: true });
      const [q, k, v] = [0, 1, 2].map(() => Tensor.from(rng.uniformArray(120 * 64, -1, 1), [120, 64]));
      for (const x of [q, k, v]) x.requiresGrad = true;
      const o = ops.scaledDotProductAttention(q, k, v, 8, 0.1, round);
      backward(ops.sumAll(ops.mul(o, o)));
      for (const t of [y, o, q.grad, k.grad, v.grad]) h.update(Buffer.from(t.toArray().buffer));
    });
  return h.digest('hex');
`;

test('three worker threads running ops at once each get the main thread\'s bits', async (t) => {
  const expected = new Function('require', WORK)(require) as string;
  const source = `
    const { parentPort } = require('worker_threads');
    require(${JSON.stringify(path.join(ROOT, 'node_modules', 'ts-node'))}).register({ transpileOnly: true });
    try {
      parentPort.postMessage({ digest: (() => { ${WORK} })() });
    } catch (e) {
      parentPort.postMessage({ error: String(e && e.stack || e) });
    }
  `;
  const results = await Promise.all(
    [0, 1, 2].map(
      () =>
        new Promise<{ digest?: string; error?: string }>((resolve, reject) => {
          const w = new Worker(source, { eval: true });
          w.once('message', (m) => {
            resolve(m);
            void w.terminate();
          });
          w.once('error', reject);
        }),
    ),
  );
  for (const [i, r] of results.entries()) {
    t.falsy(r.error, `worker ${i}: ${r.error}`);
    t.is(r.digest, expected, `worker ${i}'s outputs differ from the main thread's`);
  }
});

test('each isolate is told of its own buffers only: a worker\'s V8 does not count the main thread\'s memory', async (t) => {
  const { Tensor } = require('../../lib/tensor/tensor');
  const { cpu } = require('../../lib/runtime/native');
  const held = Tensor.zeros([64 << 18]); // 64 MB in the main thread
  t.true(cpu().memory_stats().reportedBytes >= 64 << 20, 'the main thread\'s isolate is told of its 64 MB');
  const source = `
    const { parentPort } = require('worker_threads');
    require(${JSON.stringify(path.join(ROOT, 'node_modules', 'ts-node'))}).register({ transpileOnly: true });
    const { Tensor } = require(${JSON.stringify(path.join(ROOT, 'lib', 'tensor', 'tensor'))});
    const { cpu } = require(${JSON.stringify(path.join(ROOT, 'lib', 'runtime', 'native'))});
    const mine = Tensor.zeros([1 << 18]); // 1 MB
    parentPort.postMessage({ reported: cpu().memory_stats().reportedBytes });
    mine.dispose();
  `;
  const reported = await new Promise<number>((resolve, reject) => {
    const w = new Worker(source, { eval: true });
    w.once('message', (m) => {
      resolve(m.reported);
      void w.terminate();
    });
    w.once('error', reject);
  });
  held.dispose();
  // its own 1 MB; told the process-wide figure (before), it was 65 MB
  t.true(reported >= 1 << 20 && reported < 8 << 20, `the worker's isolate was told ${(reported / 1048576).toFixed(1)} MB`);
});
