/**
 * server.ts: the HTTP face of the detector (`pstal serve`), on fastify. Routes: POST /v1/detect (a
 * video's features as a .npy body, or JSON [T][D]), GET /v1/model, GET /healthz, GET / (a page to
 * drop a .npy on). Every request is bounded: body size, longest video, queue length (429 when
 * full), time (503 while queued, 504 once running). Bad input gets a 4xx whose message names what
 * is wrong; the detection runs on the detector's worker threads, never on the event loop. See
 * docs/serve.md.
 */
import Fastify, { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createDetector, Detector, DetectorError } from './detector';
import { parseNpy } from '../data/npy';
import { servePage } from './page';
import type { DetectResult } from './protocol';

export interface ServeOptions {
  /** the run folder to serve */
  model: string;
  /** default 127.0.0.1 (loopback only) */
  host?: string;
  /** default 8080; 0 picks a free port */
  port?: number;
  /** detector worker threads (default: the cores) */
  workers?: number;
  device?: string;
  /** largest request body (default 64 MiB) */
  maxBodyBytes?: number;
  /** longest video, in feature rows (default 20000) */
  maxSnippets?: number;
  /** videos waiting for a worker beyond the running ones (default 64): one more gets 429 */
  maxQueue?: number;
  /** a request's time limit, queue and detection (default 60 s): 503 if still queued, 504 if running */
  timeoutMs?: number;
  /** fastify's request log (pino) on stdout */
  log?: boolean;
}

export const SERVE_DEFAULTS = { host: '127.0.0.1', port: 8080, maxBodyBytes: 64 * 2 ** 20, maxSnippets: 20000, maxQueue: 64, timeoutMs: 60_000 };

/** A detection as served: what `pstal detect` writes, one object a segment. */
export interface ServedDetection {
  class: string;
  start: number;
  end: number;
  score: number;
}

export interface Server {
  /** http://host:port */
  url: string;
  app: FastifyInstance;
  detector: Detector;
  /** requests of /v1/detect being answered now */
  readonly inFlight: number;
  /** Stops taking requests (new ones get 503), lets those in flight finish, stops the workers. */
  close(): Promise<void>;
}

/** An HTTP error whose message goes to the client as {"error": message}. */
class HttpError extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}

/** The features of a JSON body [T][D]: numbers only, rows of the model's width. */
function featuresFromJson(body: unknown, D: number, maxSnippets: number): { data: Float32Array; shape: [number, number] } {
  if (!Array.isArray(body)) throw new HttpError(400, `body: expected a JSON array of T rows of ${D} numbers ([T][D]), received ${body === null ? 'null' : typeof body}`);
  const T = body.length;
  if (T === 0) throw new HttpError(422, 'body: no rows; a video needs at least one snippet of features');
  if (T > maxSnippets) throw new HttpError(413, `body: a video of ${T} snippets is longer than this server takes (${maxSnippets})`);
  const data = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    const row = body[t];
    if (!Array.isArray(row) || row.length !== D) throw new HttpError(422, `body[${t}]: expected a row of ${D} numbers (the model's D), received ${Array.isArray(row) ? `${row.length} values` : JSON.stringify(row)?.slice(0, 40)}`);
    for (let d = 0; d < D; d++) {
      const x = row[d];
      if (typeof x !== 'number') throw new HttpError(422, `body[${t}][${d}]: expected a number, received ${JSON.stringify(x)?.slice(0, 40)}`);
      data[t * D + d] = x;
    }
  }
  return { data, shape: [T, D] };
}

/** The features of a .npy body. */
function featuresFromNpy(body: Buffer, D: number, maxSnippets: number): { data: Float32Array; shape: [number, number] } {
  let arr;
  try {
    arr = parseNpy('body (.npy)', body);
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
  const [T, W] = arr.shape;
  if (arr.shape.length !== 2 || W !== D) throw new HttpError(422, `body (.npy): features of shape [${arr.shape.join(', ')}] do not fit the model (expected [T, ${D}])`);
  if (T === 0) throw new HttpError(422, `body (.npy): no rows (shape [0, ${D}]); a video needs at least one snippet of features`);
  if (T > maxSnippets) throw new HttpError(413, `body (.npy): a video of ${T} snippets is longer than this server takes (${maxSnippets})`);
  return { data: arr.data, shape: [T, D] };
}

/** A schema error in words: which query parameter, and what it must be. */
function validationMessage(err: Error & { validation?: { instancePath?: string; message?: string; params?: Record<string, unknown> }[] }): string | null {
  if (!err.validation?.length) return null;
  return err.validation
    .map((v) => {
      if (v.params && typeof v.params.additionalProperty === 'string') return `unknown query parameter '${v.params.additionalProperty}' (known: name, top, timeline)`;
      return `query parameter ${(v.instancePath ?? '').replace(/^\//, '') || '?'} ${v.message ?? 'is invalid'}`;
    })
    .join('; ');
}

const STATUS: Record<DetectorError['code'], number> = {
  QUEUE_FULL: 429,
  ABORTED_QUEUED: 503,
  ABORTED_RUNNING: 504,
  CLOSED: 503,
  DISPOSED: 503,
  WORKER_EXITED: 500,
  BAD_FEATURES: 422,
  DETECT_FAILED: 422,
};

const served = (r: DetectResult): object => ({
  video: r.video,
  T: r.T,
  detections: r.detections.map((d): ServedDetection => ({ class: d.label, start: d.segment[0], end: d.segment[1], score: d.score })),
  ...(r.timelineSvg !== undefined ? { timelineSvg: r.timelineSvg } : {}),
});

/** Starts the detector's workers, then listens; resolves once both are ready. */
export async function startServer(o: ServeOptions): Promise<Server> {
  const opt = { ...SERVE_DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as Required<ServeOptions>;
  for (const k of ['maxBodyBytes', 'maxSnippets', 'timeoutMs'] as const)
    if (!(Number.isSafeInteger(opt[k]) && opt[k] >= 1)) throw new Error(`serve: ${k} must be a positive integer, received ${opt[k]}`);
  if (!(Number.isSafeInteger(opt.maxQueue) && opt.maxQueue >= 0)) throw new Error(`serve: maxQueue must be an integer >= 0, received ${opt.maxQueue}`);
  if (!(Number.isInteger(opt.port) && opt.port >= 0 && opt.port <= 65535)) throw new Error(`serve: port must be an integer in [0, 65535], received ${opt.port}`);
  const detector = await createDetector({ model: opt.model, workers: opt.workers, device: opt.device, maxQueue: opt.maxQueue });
  const D = detector.info.featureDim;
  let inFlight = 0;
  let closing = false;
  const app = Fastify({
    logger: opt.log ?? false,
    bodyLimit: opt.maxBodyBytes,
    // unknown query parameters are an error, not silently dropped
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
    return503OnClosing: true,
  });
  // text/plain would reach the route as a string: only .npy bytes and JSON are features (415 otherwise)
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(['application/octet-stream', 'application/x-npy'], { parseAs: 'buffer', bodyLimit: opt.maxBodyBytes }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err instanceof HttpError ? err.statusCode : err instanceof DetectorError ? STATUS[err.code] : err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500 && !(err instanceof DetectorError)) req.log.error(err);
    if (status === 429) void reply.header('retry-after', '1');
    const message = validationMessage(err) ?? err.message;
    return reply.status(status).send({ error: status === 500 && !(err instanceof DetectorError) ? `internal error: ${message}` : message, ...(err instanceof DetectorError ? { code: err.code } : {}) });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]} (routes: POST /v1/detect, GET /v1/model, GET /healthz, GET /)` }));

  const limits = { maxBodyBytes: opt.maxBodyBytes, maxSnippets: opt.maxSnippets, maxQueue: opt.maxQueue, timeoutMs: opt.timeoutMs };
  app.get('/', (_req, reply) => reply.type('text/html; charset=utf-8').send(servePage(detector.info, limits)));
  app.get('/favicon.ico', (_req, reply) => reply.status(204).send()); // browsers ask for it; none, without a 404 in their console
  app.get('/healthz', (_req, reply) =>
    reply.status(closing ? 503 : 200).send({ ok: !closing, workers: detector.workers, running: detector.running, queued: detector.queued, inFlight }),
  );
  app.get('/v1/model', () => {
    const i = detector.info;
    return { method: i.method, classes: i.classNames, D: i.featureDim, stages: i.stages, secondsPerSnippet: i.secondsPerSnippet, version: i.version, workers: detector.workers, limits };
  });

  const querySchema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,200}$' },
      top: { type: 'integer', minimum: 1 },
      timeline: { type: 'boolean' },
    },
  };
  app.post('/v1/detect', { schema: { querystring: querySchema } }, async (req: FastifyRequest, reply: FastifyReply) => {
    const q = req.query as { name?: string; top?: number; timeline?: boolean };
    const body = req.body;
    if (body === undefined || body === null || (Buffer.isBuffer(body) && body.length === 0))
      throw new HttpError(400, 'body: empty; send a .npy file (content-type application/octet-stream or application/x-npy) or JSON [T][D]');
    const features = Buffer.isBuffer(body) ? featuresFromNpy(body, D, opt.maxSnippets) : featuresFromJson(body, D, opt.maxSnippets);
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, opt.timeoutMs);
    // a client that hung up: its queued video is dropped
    const gone = (): void => {
      if (!reply.raw.writableFinished) ac.abort();
    };
    reply.raw.once('close', gone);
    inFlight++;
    try {
      return served(await detector.detect(features, { signal: ac.signal, name: q.name ?? 'video', top: q.top, timeline: q.timeline }));
    } catch (e) {
      if (e instanceof DetectorError && e.code.startsWith('ABORTED') && timedOut)
        throw new DetectorError(e.code, e.code === 'ABORTED_QUEUED' ? `the video waited longer than the request time limit (${opt.timeoutMs} ms) for a worker: the server is busy, retry later` : `the detection took longer than the request time limit (${opt.timeoutMs} ms)`);
      throw e;
    } finally {
      clearTimeout(timer);
      inFlight--;
    }
  });

  const address = await app.listen({ host: opt.host, port: opt.port }).catch((e) => {
    detector.dispose();
    throw new Error(`serve: cannot listen on ${opt.host}:${opt.port}: ${(e as Error).message}`);
  });
  let closed: Promise<void> | null = null;
  return {
    url: address,
    app,
    detector,
    get inFlight() {
      return inFlight;
    },
    close() {
      closing = true;
      // fastify answers new requests 503 and waits for those in flight; then the workers stop
      closed ??= app.close().then(() => detector.close());
      return closed;
    },
  };
}
