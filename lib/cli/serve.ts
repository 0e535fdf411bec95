/**
 * `pstal serve --model RUN [--host 127.0.0.1] [--port 8080] [--workers N]`: a trained run behind
 * HTTP (lib/serve/server.ts; docs/serve.md). Loopback only unless --host says otherwise. SIGTERM
 * or Ctrl-C: new requests get 503, those in flight finish, the workers stop, exit 0.
 */
import { parseArgs, CliError, OptionSpec } from './args';
import { SHARED } from './options';
import { startServer, SERVE_DEFAULTS } from '../serve/server';

export const SERVE_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', describe: 'a run folder trained by `pstal run` / `pstal train` (HR-Pro) or `pstal train --method tspnet`', required: true },
  host: { type: 'string', describe: 'address to listen on (default: loopback only; 0.0.0.0 opens it to the network)', default: SERVE_DEFAULTS.host },
  port: { type: 'number', describe: 'port (0: any free one)', default: SERVE_DEFAULTS.port },
  workers: { type: 'number', describe: 'detection worker threads, each holding the model (default: the cores)' },
  device: SHARED.device,
  'max-body-mb': { type: 'number', describe: 'largest request body in MiB', default: SERVE_DEFAULTS.maxBodyBytes / 2 ** 20 },
  'max-snippets': { type: 'number', describe: 'longest video in feature rows', default: SERVE_DEFAULTS.maxSnippets },
  'max-queue': { type: 'number', describe: 'videos waiting for a worker; one more is answered 429', default: SERVE_DEFAULTS.maxQueue },
  timeout: { type: 'number', describe: "a request's time limit in seconds (503 if still queued, 504 once running)", default: SERVE_DEFAULTS.timeoutMs / 1000 },
  log: { type: 'boolean', describe: 'log every request (JSON lines on stdout)' },
};

const posInt = (v: unknown, name: string, min = 1): number => {
  if (!(Number.isSafeInteger(v) && (v as number) >= min)) throw new CliError(`--${name} must be an integer >= ${min}, received ${v}`);
  return v as number;
};

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('serve', argv, SERVE_OPTIONS);
  if (!a) return 0;
  const port = posInt(a.port, 'port', 0);
  if (port > 65535) throw new CliError(`--port must be at most 65535, received ${port}`);
  const maxBodyMb = a['max-body-mb'] as number;
  if (!(Number.isFinite(maxBodyMb) && maxBodyMb > 0)) throw new CliError(`--max-body-mb must be a positive number, received ${maxBodyMb}`);
  const timeout = a.timeout as number;
  if (!(Number.isFinite(timeout) && timeout > 0)) throw new CliError(`--timeout must be a positive number of seconds, received ${timeout}`);
  const server = await startServer({
    model: a.model as string,
    host: a.host as string,
    port,
    workers: a.workers === undefined ? undefined : posInt(a.workers, 'workers'),
    device: a.device as string,
    maxBodyBytes: Math.round(maxBodyMb * 2 ** 20),
    maxSnippets: posInt(a['max-snippets'], 'max-snippets'),
    maxQueue: posInt(a['max-queue'], 'max-queue', 0),
    timeoutMs: Math.round(timeout * 1000),
    log: Boolean(a.log),
  });
  const i = server.detector.info;
  console.error(`pstal serve: ${server.url} (${i.method === 'hrpro' ? 'HR-Pro' : 'TSPNet'} ${i.stages.join(' + ')}, ${i.classNames.length} classes, D = ${i.featureDim}; ${server.detector.workers} worker(s))`);
  if (!/^(127\.|::1$|localhost$)/.test(a.host as string)) console.error(`pstal serve: listening on ${a.host}, not loopback only: anyone who can reach this port can use it`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      console.error(`pstal serve: ${signal}: finishing ${server.inFlight} request(s) in flight, refusing new ones`);
      server.close().then(
        () => {
          console.error('pstal serve: stopped');
          resolve(0);
        },
        (e) => {
          console.error(`pstal serve: while stopping: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
