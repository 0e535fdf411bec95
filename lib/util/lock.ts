/**
 * lock.ts: one run folder, one writer. `lockRunFolder(dir)` creates `dir/.pstal.lock` (the owner's
 * pid, host, command and start time, written whole before it becomes visible: a temporary file
 * hard-linked into place, which fails when the lock exists). A second process is refused with a
 * message naming the owner; a lock whose process is gone (killed, crashed) is taken over. Locks are
 * counted within a process (`pstal run` holds it across both stages while each training loop also
 * takes it) and released at the last `release()` or when the process exits.
 *
 * On taking a folder, the temporary files of writes that a killed owner left there are removed.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { processAlive, removeStaleTemps } from './fs';

export const LOCK_FILE = '.pstal.lock';

export interface LockOwner {
  pid: number;
  host: string;
  command: string;
  started: string;
}

export interface RunLock {
  file: string;
  /** temporary files of killed writes removed when the lock was taken */
  removedTemps: string[];
  release(): void;
}

/** Thrown when another live process holds the folder. */
export class FolderLockedError extends Error {
  owner: LockOwner | null;
  constructor(message: string, owner: LockOwner | null) {
    super(message);
    this.owner = owner;
  }
}

const held = new Map<string, { count: number; file: string }>();
let exitHook = false;

function releaseAllOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const { file } of held.values()) unlinkIfOurs(file);
    held.clear();
  });
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
    return typeof o?.pid === 'number' ? o : null;
  } catch {
    return null;
  }
}

function unlinkIfOurs(file: string): void {
  const o = readOwner(file);
  if (o && o.pid === process.pid && o.host === os.hostname()) fs.rmSync(file, { force: true });
}

function tryCreate(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, content);
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    if ((e as NodeJS.ErrnoException).code === 'EPERM' || (e as NodeJS.ErrnoException).code === 'ENOTSUP') {
      // file systems without hard links: exclusive create (the content is written right after)
      try {
        fs.writeFileSync(file, content, { flag: 'wx' });
        return true;
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e2;
      }
    }
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Takes `dir` for this process (creating the folder). `command` is shown to a second process that
 * is refused. Throws FolderLockedError when a live process holds it.
 */
export function lockRunFolder(dir: string, command = process.argv.slice(1).join(' ')): RunLock {
  const key = path.resolve(dir);
  const file = path.join(key, LOCK_FILE);
  const mine = held.get(key);
  const release = (): void => {
    const h = held.get(key);
    if (!h) return;
    if (--h.count <= 0) {
      held.delete(key);
      unlinkIfOurs(file);
    }
  };
  if (mine) {
    mine.count++;
    return { file, removedTemps: [], release: once(release) };
  }
  try {
    fs.mkdirSync(key, { recursive: true });
  } catch (e) {
    throw new Error(`${dir}: cannot create the run folder: ${(e as Error).message}`);
  }
  const me: LockOwner = { pid: process.pid, host: os.hostname(), command: command.slice(0, 500), started: new Date().toISOString() };
  const content = JSON.stringify(me) + '\n';
  for (let attempt = 0; ; attempt++) {
    let created: boolean;
    try {
      created = tryCreate(file, content);
    } catch (e) {
      throw new Error(`${file}: cannot create the run folder's lock: ${(e as Error).message}`);
    }
    if (created) break;
    const owner = readOwner(file);
    const sameHost = !owner || owner.host === os.hostname();
    const alive = owner ? (sameHost ? processAlive(owner.pid) : true) : false;
    if (owner && alive) {
      throw new FolderLockedError(
        `${dir} is in use by another pstal process (pid ${owner.pid}${sameHost ? '' : ` on ${owner.host}`}, since ${owner.started}: ${owner.command || '?'}); ` +
          `one run folder takes one writer: wait for it to finish, stop it, or choose another --out` +
          (sameHost ? '' : ` (a lock from another host is never taken over: remove ${file} if that process is gone)`),
        owner,
      );
    }
    if (attempt >= 3) throw new Error(`${file}: could not take over a stale lock (another process keeps taking it)`);
    // the owner is gone (or the file is unreadable): take it over
    fs.rmSync(file, { force: true });
  }
  held.set(key, { count: 1, file });
  releaseAllOnExit();
  const removedTemps = removeStaleTemps(key);
  return { file, removedTemps, release: once(release) };
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}
