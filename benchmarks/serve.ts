/**
 * The load test of `pstal serve` (localhost only, bounded in count and time): starts the server
 * as a child process, sends `--requests` detection requests from `--concurrency` clients at once
 * (keep-alive connections), `--malformed` of them malformed (a bad .npy, the wrong width, a
 * truncated file, a non-number in JSON, an unknown query parameter, a text body), and reports
 * throughput, latency p50/p99 of the good requests, errors, what the malformed ones got, and the
 * server's RSS once the warm-up's requests are answered (the stream goes on without a pause) and
 * at the end. `--sigterm`: then a burst of requests and a SIGTERM
 * while they are in flight: each must be answered 200 and the server must exit 0.
 *
 *   node -r ts-node/register/transpile-only benchmarks/serve.ts --model RUN --features DIR
 *   node -r ts-node/register/transpile-only benchmarks/serve.ts --dim 2048     # trains a small run of that width first
 *   options: --requests 10000 --concurrency 32 --malformed 0.1 --warmup 1000 --workers N --max-seconds 900 --sigterm --out FILE.json
 *
 * The functions are also the CI-sized test's (test/e2e/serve-load.test.ts).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { spawn, ChildProcess } from 'child_process';
import { encodeNpy, readNpy } from '../lib/data/npy';
import { Rng } from '../lib/util/rng';

const ROOT = path.resolve(__dirname, '..');

/** One request's body and headers; `good`: a valid video, else a malformed request expecting a 4xx. */
export interface Req {
  path: string;
  contentType: string;
  body: Buffer;
  good: boolean;
  what: string;
}

const npyBytes = (data: Float32Array, shape: number[]): Buffer => Buffer.concat(encodeNpy(data, shape).map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)));

/** Valid requests: each feature file as a .npy body. */
export function goodRequests(files: string[]): Req[] {
  return files.map((f) => ({ path: `/v1/detect?name=${path.basename(f, '.npy').replace(/[^A-Za-z0-9_.-]/g, '_')}`, contentType: 'application/x-npy', body: fs.readFileSync(f), good: true, what: 'a video' }));
}

/** Malformed requests of every kind the server must answer 4xx, for a model of width D. */
export function malformedRequests(D: number): Req[] {
  const ok = npyBytes(new Float32Array(4 * D).fill(0.1), [4, D]);
  const nan = new Float32Array(4 * D);
  nan[5] = NaN;
  return [
    { path: '/v1/detect', contentType: 'application/octet-stream', body: Buffer.from('not a numpy file at all'), good: false, what: 'bad magic' },
    { path: '/v1/detect', contentType: 'application/x-npy', body: npyBytes(new Float32Array(4 * (D + 1)), [4, D + 1]), good: false, what: 'wrong width' },
    { path: '/v1/detect', contentType: 'application/x-npy', body: ok.subarray(0, ok.length - 7), good: false, what: 'truncated' },
    { path: '/v1/detect', contentType: 'application/x-npy', body: npyBytes(nan, [4, D]), good: false, what: 'NaN' },
    { path: '/v1/detect', contentType: 'application/json', body: Buffer.from(JSON.stringify([Array(D).fill('x')])), good: false, what: 'JSON non-number' },
    { path: '/v1/detect', contentType: 'application/json', body: Buffer.from('[[1, 2'), good: false, what: 'JSON syntax' },
    { path: '/v1/detect?bogus=1', contentType: 'application/x-npy', body: ok, good: false, what: 'unknown parameter' },
    { path: '/v1/detect', contentType: 'text/plain', body: Buffer.from('hello'), good: false, what: 'text body' },
  ];
}

export interface LoadReport {
  requests: number;
  seconds: number;
  throughput: number;
  good: { count: number; ok: number; errors: number; p50Ms: number; p99Ms: number; maxMs: number };
  malformed: { count: number; answered4xx: number; other: Record<string, number> };
  /** requests without an HTTP answer (connection refused or reset) */
  networkErrors: number;
  statuses: Record<string, number>;
}

/** One request; resolves with the status (0: no answer) and the time it took. */
export function send(agent: http.Agent, base: URL, r: Req): Promise<{ status: number; ms: number; body: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request(
      { agent, host: base.hostname, port: base.port, method: 'POST', path: r.path, headers: { 'content-type': r.contentType, 'content-length': r.body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve({ status: 0, ms: performance.now() - t0, body: '' }));
      },
    );
    req.on('error', (e) => resolve({ status: 0, ms: performance.now() - t0, body: String(e) }));
    req.end(r.body);
  });
}

const pct = (sorted: number[], p: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);

/** `requests` requests from `concurrency` clients; a fraction `malformed` of them malformed (seeded). */
export async function runLoad(o: {
  url: string;
  requests: number;
  concurrency: number;
  malformed: number;
  good: Req[];
  bad: Req[];
  seed?: number;
  maxSeconds?: number;
  /** the first `warmup` requests are sent but not counted (the stream does not pause after them) */
  warmup?: number;
  /** called once the warm-up's requests are answered (at the start when there is none) */
  onWarm?: () => void;
}): Promise<LoadReport> {
  const base = new URL(o.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const rng = new Rng(o.seed ?? 1);
  const warmup = o.warmup ?? 0;
  const plan = Array.from({ length: warmup + o.requests }, (_, i) => (rng.uniform() < o.malformed ? o.bad[i % o.bad.length] : o.good[i % o.good.length]));
  const goodMs: number[] = [];
  const report: LoadReport = { requests: 0, seconds: 0, throughput: 0, good: { count: 0, ok: 0, errors: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 }, malformed: { count: 0, answered4xx: 0, other: {} }, networkErrors: 0, statuses: {} };
  const deadline = Date.now() + (o.maxSeconds ?? 900) * 1000;
  let next = 0;
  let answered = 0;
  let t0 = performance.now();
  if (warmup === 0) o.onWarm?.();
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (next < plan.length && Date.now() < deadline) {
        const r = plan[next++];
        const res = await send(agent, base, r);
        if (++answered === warmup) {
          o.onWarm?.();
          t0 = performance.now();
        }
        if (answered <= warmup) continue;
        report.requests++;
        report.statuses[res.status] = (report.statuses[res.status] ?? 0) + 1;
        if (res.status === 0) report.networkErrors++;
        if (r.good) {
          report.good.count++;
          if (res.status === 200) {
            report.good.ok++;
            goodMs.push(res.ms);
          } else report.good.errors++;
        } else {
          report.malformed.count++;
          if (res.status >= 400 && res.status < 500) report.malformed.answered4xx++;
          else report.malformed.other[`${r.what}: ${res.status}`] = (report.malformed.other[`${r.what}: ${res.status}`] ?? 0) + 1;
        }
      }
    }),
  );
  agent.destroy();
  report.seconds = (performance.now() - t0) / 1000;
  report.throughput = report.requests / report.seconds;
  goodMs.sort((a, b) => a - b);
  Object.assign(report.good, { p50Ms: pct(goodMs, 50), p99Ms: pct(goodMs, 99), maxMs: goodMs[goodMs.length - 1] ?? NaN });
  return report;
}

/** A process's resident set (Linux /proc; NaN elsewhere). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `pstal serve --port 0 ...args` as a child process; resolves once it listens. */
export function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'pstal.js'), 'serve', '--port', '0', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString('utf8');
      const m = /pstal serve: (http:\/\/\S+)/.exec(err);
      if (m) resolve({ url: m[1], child, stderr: () => err, exited });
    });
    void exited.then(({ code }) => reject(new Error(`pstal serve exited (code ${code}) before listening:\n${err}`)));
  });
}

async function getJson(url: string): Promise<Record<string, unknown>> {
  const r = await fetch(url);
  return (await r.json()) as Record<string, unknown>;
}

/**
 * A burst of `n` requests, then SIGTERM once at least half are in flight; every request must be
 * answered 200 and the server must exit 0.
 */
export async function sigtermUnderLoad(server: ServerProcess, good: Req[], n: number): Promise<{ sent: number; ok: number; statuses: Record<string, number>; exit: { code: number | null; signal: string | null }; inFlightAtSignal: number }> {
  const base = new URL(server.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: n });
  const all = Array.from({ length: n }, (_, i) => send(agent, base, good[i % good.length]));
  let inFlight = 0;
  for (let k = 0; k < 400 && inFlight < Math.ceil(n / 2); k++) {
    inFlight = Number((await getJson(`${server.url}/healthz`)).inFlight);
    if (inFlight < Math.ceil(n / 2)) await new Promise((r) => setTimeout(r, 5));
  }
  server.child.kill('SIGTERM');
  const res = await Promise.all(all);
  agent.destroy();
  const statuses: Record<string, number> = {};
  for (const r of res) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const exit = await server.exited;
  return { sent: n, ok: res.filter((r) => r.status === 200).length, statuses, exit, inFlightAtSignal: inFlight };
}

function snippetSummary(files: string[]): { mean: number; max: number } {
  const T = files.map((f) => readNpy(f).shape[0]);
  return { mean: Math.round(T.reduce((a, b) => a + b, 0) / T.length), max: Math.max(...T) };
}

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main(): Promise<number> {
  let model = arg('model');
  let featureDir = arg('features');
  const requests = Number(arg('requests', '10000'));
  const concurrency = Number(arg('concurrency', '32'));
  const malformed = Number(arg('malformed', '0.1'));
  const warmup = Number(arg('warmup', '1000'));
  const workers = arg('workers');
  const maxSeconds = Number(arg('max-seconds', '900'));
  let tmp: string | undefined;
  if (!model) {
    const dim = Number(arg('dim', '64'));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-serve-bench-'));
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { tinyRun } = require('../test/helpers/tiny-run') as typeof import('../test/helpers/tiny-run');
    const t0 = Date.now();
    const r = await tinyRun(tmp, { dim, videos: 24, durationScale: 0.3 });
    console.error(`serve bench: trained a small run of D = ${dim} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    model = r.run;
    featureDir = path.dirname(r.features[0]);
  }
  if (!featureDir) throw new Error('--features DIR (the .npy files to send) is needed with --model');
  const files = fs.readdirSync(featureDir).filter((f) => f.endsWith('.npy')).sort().map((f) => path.join(featureDir!, f));
  const D = readNpy(files[0]).shape[1];
  const good = goodRequests(files);
  const bad = malformedRequests(D);
  const server = await spawnServer(['--model', model, '--max-queue', String(4 * concurrency), ...(workers ? ['--workers', workers] : [])]);
  try {
    const pid = server.child.pid!;
    const rssStart = rssBytes(pid);
    // one stream: `warmup` requests, then `requests` measured, without a pause between them (an
    // idle server lets V8 shrink its heaps, and a figure taken then is not the steady state's)
    let rssWarm = NaN;
    const series: number[] = [];
    let sampler: NodeJS.Timeout | undefined;
    const load = await runLoad({
      url: server.url, requests, concurrency, malformed, good, bad, seed: 1, maxSeconds, warmup,
      onWarm: () => {
        rssWarm = rssBytes(pid);
        // the server's RSS once a second from then on: a leak climbs, a heap settling flattens
        sampler = setInterval(() => series.push(Math.round(rssBytes(pid) / 2 ** 20)), 1000);
      },
    });
    clearInterval(sampler);
    const rssEnd = rssBytes(pid);
    const info = await getJson(`${server.url}/v1/model`);
    const sig = process.argv.includes('--sigterm') ? await sigtermUnderLoad(server, good, concurrency) : undefined;
    const out = {
      machine: `${os.cpus()[0]?.model} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
      date: new Date().toISOString(),
      command: `benchmarks/serve.ts ${process.argv.slice(2).join(' ')}`,
      model: { D, method: info.method, stages: info.stages, workers: info.workers, videos: files.length, snippets: snippetSummary(files) },
      warmup,
      load,
      rss: { startMB: rssStart / 2 ** 20, afterWarmupMB: rssWarm / 2 ** 20, endMB: rssEnd / 2 ** 20, growthPercent: (100 * (rssEnd - rssWarm)) / rssWarm, everySecondMB: series },
      sigterm: sig,
    };
    console.log(JSON.stringify(out, null, 2));
    const file = arg('out');
    if (file) fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
    const bad4xx = load.malformed.answered4xx === load.malformed.count;
    const ok = load.good.errors === 0 && load.networkErrors === 0 && bad4xx && out.rss.growthPercent < 10 && (!sig || (sig.ok === sig.sent && sig.exit.code === 0));
    return ok ? 0 : 1;
  } finally {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
    await server.exited;
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module)
  main().then(
    (code) => (process.exitCode = code),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
