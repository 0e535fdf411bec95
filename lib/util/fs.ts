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
 * - tests inject faults with `setWriteHook` (called before each open, write, fsync and rename);
 * - only a regular file is replaced: a path that is a symbolic link to a regular file is written
 *   through (its target is replaced, the link stays), and a FIFO, socket, device, directory or a
 *   link to one of those, or a dangling link, is refused naming it (an `--out /dev/full` or an
 *   `--out` that is a link must not be swapped for a regular file).
 *
 * And every read of an outside file opens it with `openRegular` / `readRegularFile`: a FIFO, a
 * device (/dev/zero), a socket or a directory is an Error naming the file, before any byte is read
 * (a FIFO opened for reading blocks until a writer comes; /dev/zero never ends), and a read takes
 * at most the size the file had when opened.
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

/** What a non-regular file is, for messages ('a FIFO', 'a character device', ...); null for a regular file. */
export function fileKind(st: fs.Stats): string | null {
  if (st.isFile()) return null;
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** An input that is not a regular file (a FIFO, a device, a socket, a directory); the message names the file. */
export class NotRegularFileError extends Error {
  code = 'ENOTREG';
  constructor(
    readonly file: string,
    readonly kind: string,
  ) {
    super(`${file} is ${kind}, not a regular file`);
  }
}

// O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer (the fstat
// that follows refuses it); it changes nothing for a regular file. Not defined on Windows.
const OPEN_READ = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0);

/**
 * Opens `file` for reading when it is a regular file (a symbolic link to one included): anything
 * else is a NotRegularFileError, without blocking (a FIFO) and without reading (/dev/zero).
 * Returns the descriptor and the file's size; a missing file is Node's ENOENT error.
 */
export function openRegular(file: string): { fd: number; size: number } {
  const kind = fileKind(fs.statSync(file)); // before opening: opening a device can have effects
  if (kind) throw new NotRegularFileError(file, kind);
  const fd = fs.openSync(file, OPEN_READ);
  try {
    const st = fs.fstatSync(fd); // what was opened (the path may have changed since the stat)
    const k = fileKind(st);
    if (k) throw new NotRegularFileError(file, k);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * Reads `length` bytes at `position` from `fd` (fewer only at the end of the file), into a new
 * Buffer or into `into`.
 */
export function readAt(fd: number, length: number, position: number, into?: Uint8Array): Buffer {
  const buf = into ? Buffer.from(into.buffer, into.byteOffset, length) : Buffer.allocUnsafe(length);
  let off = 0;
  while (off < length) {
    const n = fs.readSync(fd, buf, off, Math.min(length - off, 1 << 30), position + off);
    if (n === 0) break;
    off += n;
  }
  return off === length ? buf : buf.subarray(0, off);
}

/** The bytes of a regular file (see openRegular), at most `maxBytes` of them (default: its size when opened). */
export function readRegularFile(file: string, maxBytes = Infinity): Buffer {
  const { fd, size } = openRegular(file);
  try {
    return readAt(fd, Math.min(size, maxBytes), 0);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The path a write of `file` replaces: `file` itself when it is missing or a regular file, the
 * target when it is a symbolic link to a regular file. Anything else throws (the caller names it).
 */
function replaceablePath(file: string): string {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return file;
    throw e;
  }
  if (st.isFile()) return file;
  if (!st.isSymbolicLink()) throw notReplaced(fileKind(st)!);
  let target: string;
  try {
    target = fs.realpathSync(file);
  } catch {
    throw notReplaced(`a symbolic link to a missing file (${fs.readlinkSync(file)})`);
  }
  const kind = fileKind(fs.statSync(target));
  if (kind) throw notReplaced(`a symbolic link to ${kind} (${target})`);
  return target;
}

function notReplaced(kind: string): NodeJS.ErrnoException {
  const e = new Error(`it is ${kind}, not a regular file; only a regular file (or a symbolic link to one) is replaced`) as NodeJS.ErrnoException;
  e.code = 'ENOTREG';
  return e;
}

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
}

/**
 * A file written piece by piece into a temporary file and renamed over `file` by commit(): the
 * atomic write of writeFileAtomic for data too large to hold at once (an ActivityNet-scale
 * proposals file). Any failure is a WriteError naming `file`, the temporary file is removed and
 * `file` keeps its previous content; abort() drops what was written. When `file` is a symbolic
 * link to a regular file, its target is replaced and the link kept; a `file` that is anything
 * else but a regular file (a FIFO, a device, a directory) is refused before anything is written.
 */
export class AtomicFileWriter {
  private readonly tmp: string;
  /** what the rename replaces: `file`, or the regular file a link at `file` points to */
  private readonly target: string;
  private fd = -1;
  constructor(readonly file: string) {
    try {
      this.target = replaceablePath(file);
    } catch (e) {
      throw new WriteError(file, e);
    }
    const dir = path.dirname(this.target);
    try {
      hook?.('mkdir', dir);
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new WriteError(file, e);
    }
    this.tmp = tempName(this.target);
    try {
      hook?.('open', this.tmp);
      this.fd = fs.openSync(this.tmp, 'w');
    } catch (e) {
      throw new WriteError(file, e);
    }
    // a file written over (or through a link) keeps its permissions (not set-id bits)
    try {
      fs.fchmodSync(this.fd, fs.statSync(this.target).mode & 0o777);
    } catch {
      // a new file: the default mode
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
      // the target may have changed since the open (a FIFO made in its place): checked again
      if (replaceablePath(this.file) !== this.target) throw Object.assign(new Error('it changed while being written (a link now leads elsewhere)'), { code: 'ENOTREG' });
      fs.renameSync(this.tmp, this.target);
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
