/**
 * The load test of benchmarks/serve.ts at CI size: `pstal serve` as a child process on a small
 * trained run, 32 clients at once, 400 requests of which 10 % malformed (every kind the
 * benchmark sends). Every good request is answered 200, every malformed one 4xx, no connection
 * fails, and the server is still up and healthy afterwards. The full-size figures (10,000
 * requests, the demo's model and D = 2048) are in docs/benchmarks.md.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tinyRun } from '../helpers/tiny-run';
import { spawnServer, runLoad, goodRequests, malformedRequests, rssBytes } from '../../benchmarks/serve';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-serve-load-'));
test.after.always(() => fs.rmSync(root, { recursive: true, force: true }));

test('32 concurrent clients, 400 requests, 10 % malformed: 0 errors on the good ones, 4xx on every malformed one', async (t) => {
  const tiny = await tinyRun(root);
  const server = await spawnServer(['--model', tiny.run, '--workers', '2', '--max-queue', '128']);
  try {
    const good = goodRequests(tiny.features);
    const bad = malformedRequests(tiny.dim);
    const before = rssBytes(server.child.pid!);
    const r = await runLoad({ url: server.url, requests: 400, concurrency: 32, malformed: 0.1, good, bad, seed: 3, maxSeconds: 40 });
    const after = rssBytes(server.child.pid!);
    t.is(r.requests, 400);
    t.is(r.networkErrors, 0);
    t.is(r.good.errors, 0, JSON.stringify(r.statuses));
    t.true(r.malformed.count >= 20, `${r.malformed.count} malformed`);
    t.is(r.malformed.answered4xx, r.malformed.count, JSON.stringify(r.malformed.other));
    const h = await fetch(`${server.url}/healthz`);
    t.is(h.status, 200);
    t.like(await h.json(), { ok: true, workers: 2, running: 0, queued: 0 });
    t.log(`${r.throughput.toFixed(0)} requests/s, good p50 ${r.good.p50Ms.toFixed(1)} ms, p99 ${r.good.p99Ms.toFixed(1)} ms; server RSS ${(before / 2 ** 20).toFixed(0)} -> ${(after / 2 ** 20).toFixed(0)} MB`);
  } finally {
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    t.is(exit.code, 0, server.stderr());
  }
});
