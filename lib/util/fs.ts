/**
 * fs.ts: atomic file writes. The data goes to a temporary file in the same folder, is flushed to
 * disk, and is renamed over the target, so a crash mid-write never leaves a half-written file.
 *
 * Every write of the package goes through this module, so:
 * - a failing write (disk full, no permission, a read-only file system) is an Error naming the
 *   file and the system's reason (`code` kept: ENOSPC, EACCES, EROFS...), the temporary file is
 *   removed and the previous version of the target stays as it was;
 * - temporary files of writes killed half-way (`.<name>.<pid>.<ms>.tmp`) are recognisable, and
 *   `removeStaleTemps(dir)` removes them (the run folder's lock holder does it on start);
 * - tests inject faults with `setWriteHook` (called before each open, write, fsync and rename).
 */
import * as fs from 'fs';
import * as path from 'path';

export type WriteOp = 'mkdir' | 'open' | 'write' | 'fsync' | 'rename';

/** Called before each file-system operation of a write; throwing (e.g. an ENOSPC error) simulates that failure. */
export type WriteHook = (op: WriteOp, file: string, bytes?: number) => void;

let hook: WriteHook | null = null;

/** Installs a fault-injection hook for every write of the package (null removes it); returns the previous one. */
export function setWriteHook(h: WriteHook | null): WriteHook | null {
  const prev = hook;
  hook = h;
  return prev;
}

/** An Error like Node's for `code` (ENOSPC, EACCES, EROFS, EIO...), for tests and fault hooks. */
export function fsError(code: string, syscall: string, file?: string): NodeJS.ErrnoException {
  const reasons: Record<string, string> = {
    ENOSPC: 'no space left on device',
    EACCES: 'permission denied',
    EROFS: 'read-only file system',
    EIO: 'i/o error',
    EDQUOT: 'disk quota exceeded',
  };
  const e = new Error(`${code}: ${reasons[code] ?? 'error'}, ${syscall}${file ? ` '${file}'` : ''}`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = syscall;
  if (file) e.path = file;
  return e;
}

const HINTS: Record<string, string> = {
  ENOSPC: 'the disk is full: free some space and rerun (with --resume for a training run)',
  EDQUOT: 'the disk quota is exhausted: free some space and rerun (with --resume for a training run)',
  EACCES: 'no permission to write there: choose another folder or fix its permissions',
  EPERM: 'no permission to write there: choose another folder or fix its permissions',
  EROFS: 'the file system is read-only: choose another folder',
};

/** The Error a failed write of `file` throws: the file, the system's reason, a hint; `code` kept. */
export class WriteError extends Error {
  code?: string;
  file: string;
  constructor(file: string, cause: unknown) {
    const c = cause as NodeJS.ErrnoException;
    const code = c?.code;
    const reason = (c?.message ?? String(cause)).replace(/, \w+ '[^']*'$/, '');
    super(`${file}: cannot write: ${reason}${code && HINTS[code] ? ` (${HINTS[code]}); the previous version of the file is unchanged` : ''}`);
    this.code = code;
    this.file = file;
  }
}

const TEMP_RE = /^\.(.+)\.(\d+)\.(\d+)\.tmp$/;

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
}

/**
 * A file written piece by piece into a temporary file and renamed over `file` by commit(): the
 * atomic write of writeFileAtomic for data too large to hold at once (an ActivityNet-scale
 * proposals file). Any failure is a WriteError naming `file`, the temporary file is removed and
 * `file` keeps its previous content; abort() drops what was written.
 */
export class AtomicFileWriter {
  private readonly tmp: string;
  private fd = -1;
  constructor(readonly file: string) {
    const dir = path.dirname(file);
    try {
      hook?.('mkdir', dir);
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new WriteError(file, e);
    }
    this.tmp = tempName(file);
    try {
      hook?.('open', this.tmp);
      this.fd = fs.openSync(this.tmp, 'w');
    } catch (e) {
      throw new WriteError(file, e);
    }
  }

  write(data: string | Uint8Array): void {
    if (this.fd < 0) throw new Error(`${this.file}: write after commit or abort`);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) {
        hook?.('write', this.tmp, buf.length - off);
        off += fs.writeSync(this.fd, buf, off, buf.length - off);
      }
    } catch (e) {
      this.abort();
      throw new WriteError(this.file, e);
    }
  }

  commit(): void {
    if (this.fd < 0) throw new Error(`${this.file}: commit after commit or abort`);
    try {
      hook?.('fsync', this.tmp);
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = -1;
      hook?.('rename', this.file);
      fs.renameSync(this.tmp, this.file);
    } catch (e) {
      this.abort();
      throw new WriteError(this.file, e);
    }
  }

  /** Drops the temporary file (nothing of `file` changes); harmless after commit. */
  abort(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already failing: the write's error is the one to report
      }
      this.fd = -1;
    }
    fs.rmSync(this.tmp, { force: true }); // gone already after a commit
  }
}

/** Writes `data` to `file` atomically; a failure is a WriteError naming `file`, and `file` keeps its previous content. */
export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): void {
  const w = new AtomicFileWriter(file);
  for (const part of Array.isArray(data) ? data : [data]) w.write(part);
  w.commit();
}

/**
 * Removes the temporary files that killed writes left in `dir` (`.<name>.<pid>.<ms>.tmp`), except
 * those of live processes other than this one. Returns the names removed.
 */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid !== process.pid && processAlive(pid)) continue;
    try {
      fs.rmSync(path.join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // not ours to remove (permissions): harmless, it is never read
    }
  }
  return removed;
}

/** Whether a process with this id exists on this machine (EPERM: it exists, owned by another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
