/**
 * lock.ts: one run folder, one writer. `lockRunFolder(dir)` creates `dir/.pstal.lock` (the owner's
 * pid, host, command and start time, written whole before it becomes visible: a temporary file
 * hard-linked into place, which fails when the lock exists). A second process is refused with a
 * message naming the owner; a lock whose process is gone (killed, crashed) is taken over, by one
 * process only when several try at once (`takeOver`), saying why (`RunLock.takenOver`). So is a lock whose pid is
 * alive but is another process (the pid reused after the owner died, or a lock naming an unrelated
 * program): the lock records a start-time token of its owner (Linux: /proc/<pid>/stat's start time
 * and the boot id), and a live pid with another token, or, for a lock without one, a command line
 * (/proc/<pid>/cmdline) that is not the lock's command, is not the owner. Locks are
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
  /** the owner's start-time token (processStartToken), where the system gives one */
  token?: string;
}

export interface RunLock {
  file: string;
  /** temporary files of killed writes removed when the lock was taken */
  removedTemps: string[];
  /** why a lock left by another process was taken over (the CLI prints it as a warning), or null */
  takenOver: string | null;
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

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as LockOwner;
    return typeof o?.pid === 'number' ? o : null;
  } catch {
    return null;
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    return parseOwner(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** One lock file as found: its owner (null: unreadable), inode and age; null when there is none. */
interface LockInstance {
  owner: LockOwner | null;
  text: string;
  ino: number;
  mtimeMs: number;
}

function readLock(file: string): LockInstance | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    const text = fs.readFileSync(fd, 'utf8');
    return { owner: parseOwner(text), text, ino: st.ino, mtimeMs: st.mtimeMs };
  } finally {
    fs.closeSync(fd);
  }
}

/** Tests: a pause between judging a lock stale and taking it over, widening the window two racing processes share. */
const TAKEOVER_DELAY_MS = Number(process.env.PSTAL_TEST_LOCK_TAKEOVER_DELAY_MS ?? 0) || 0;

/** A lock that cannot be read is taken over only once it is this old (a lock being written is never read as stale). */
const UNREADABLE_STALE_MS = 5000;

/**
 * Replaces the stale lock instance `stale` with ours, or returns false when another process got
 * there first. Two processes that both judged one lock stale used to both remove it and both create
 * their own (the second removing the first's fresh lock): now the right to replace one instance
 * (its inode) is a token file created exclusively, `.pstal.lock.takeover-<inode>`. Its holder checks
 * that the lock is still that instance (nothing else can change it meanwhile: creators need it
 * absent, other takers need the token, its owner is dead) and renames its own lock over it.
 */
function takeOver(file: string, stale: LockInstance, content: string): boolean {
  const token = `${file}.takeover-${stale.ino}`;
  let mine: boolean;
  try {
    mine = tryCreate(token, `${process.pid}\n`);
  } catch (e) {
    // the folder's files changing under us (a winner cleaning up): not ours this time, look again
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  if (!mine) {
    // another process is replacing this instance; if it died doing so, its token goes (then retry).
    // The token may vanish at any moment (its holder done): reading it is allowed to fail.
    let holder = NaN;
    try {
      holder = Number.parseInt(fs.readFileSync(token, 'utf8'), 10);
    } catch {
      return false;
    }
    if (Number.isInteger(holder) && !processAlive(holder)) fs.rmSync(token, { force: true });
    return false;
  }
  try {
    const now = readLock(file);
    if (!now || now.ino !== stale.ino || now.text !== stale.text) return false; // replaced or removed meanwhile
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    try {
      fs.writeFileSync(tmp, content);
      fs.renameSync(tmp, file);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    return true;
  } finally {
    fs.rmSync(token, { force: true });
  }
}

/**
 * A token that tells a process from a later one given the same pid: the boot id and the process's
 * start time in clock ticks since boot (/proc/<pid>/stat field 22). null where /proc is not there.
 */
export function processStartToken(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) is in parentheses and may hold spaces or parentheses itself
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[19]; // field 22 of the whole line
    if (!start || !/^\d+$/.test(start)) return null;
    let boot = '';
    try {
      boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      // no boot id: the start time alone
    }
    return `${boot}:${start}`;
  } catch {
    return null;
  }
}

/** The command line of a process (/proc/<pid>/cmdline, arguments joined by spaces), or null where it cannot be read. */
function commandLine(pid: number): string | null {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.length ? raw.replace(/\0+$/, '').split('\0').join(' ') : null;
  } catch {
    return null;
  }
}

/**
 * Whether the live process `owner.pid` (same host) is the one that wrote the lock: null when it
 * is (or when this cannot be told), else why not.
 */
function notTheOwner(owner: LockOwner): string | null {
  if (owner.token) {
    const now = processStartToken(owner.pid);
    if (now !== null && now !== owner.token) return `pid ${owner.pid} is alive but is a later process than the lock's owner (another start time: the pid was reused)`;
    if (now !== null) return null;
  }
  const cmd = commandLine(owner.pid);
  if (cmd === null) return null;
  if (owner.command ? cmd.includes(owner.command) : /\b(node|nodejs|pstal)\b/.test(cmd)) return null;
  return `pid ${owner.pid} is alive but runs \`${cmd.slice(0, 200)}\`, not ${owner.command ? `the lock's command \`${owner.command.slice(0, 200)}\`` : 'a pstal process'}`;
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
    return { file, removedTemps: [], takenOver: null, release: once(release) };
  }
  try {
    fs.mkdirSync(key, { recursive: true });
  } catch (e) {
    throw new Error(`${dir}: cannot create the run folder: ${(e as Error).message}`);
  }
  const token = processStartToken(process.pid);
  const me: LockOwner = { pid: process.pid, host: os.hostname(), command: command.slice(0, 500), started: new Date().toISOString(), ...(token ? { token } : {}) };
  const content = JSON.stringify(me) + '\n';
  const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  let takenOver: string | null = null;
  for (let attempt = 0; ; attempt++) {
    let why: string | null = null;
    let taken: boolean;
    try {
      taken = tryCreate(file, content);
      if (!taken) {
        const found = readLock(file);
        if (!found) continue; // released meanwhile: create again
        const owner = found.owner;
        const sameHost = !owner || owner.host === os.hostname();
        let alive = owner ? (sameHost ? processAlive(owner.pid) : true) : Date.now() - found.mtimeMs < UNREADABLE_STALE_MS;
        if (owner && sameHost && !alive) why = `its owner, pid ${owner.pid} (${owner.command || '?'}), is no longer running`;
        if (owner && sameHost && alive) {
          why = notTheOwner(owner);
          if (why) alive = false;
        }
        if (!owner && !alive) why = 'it could not be read and is old';
        if (alive) {
          if (!owner) throw new FolderLockedError(`${dir} is in use by another pstal process (its lock ${file} is being written or is damaged; if no pstal process uses the folder, remove it)`, null);
          throw new FolderLockedError(
            `${dir} is in use by another pstal process (pid ${owner.pid}${sameHost ? '' : ` on ${owner.host}`}, since ${owner.started}: ${owner.command || '?'}); ` +
              `one run folder takes one writer: wait for it to finish, stop it, or choose another --out` +
              (sameHost ? '' : ` (a lock from another host is never taken over: remove ${file} if that process is gone)`),
            owner,
          );
        }
        // the owner is gone (or the file is unreadable and old): take it over, one process only
        if (TAKEOVER_DELAY_MS > 0) sleep(TAKEOVER_DELAY_MS);
        taken = takeOver(file, found, content);
      }
    } catch (e) {
      if (e instanceof FolderLockedError) throw e;
      throw new Error(`${file}: cannot create the run folder's lock: ${(e as Error).message}`);
    }
    if (taken) {
      if (why) takenOver = `took over ${file}: ${why}`;
      break;
    }
    if (attempt >= 50) throw new Error(`${file}: could not take over a stale lock (other processes keep taking it)`);
    sleep(2 + attempt); // another process is taking it over: look again once it has
  }
  held.set(key, { count: 1, file });
  releaseAllOnExit();
  const removedTemps = removeStaleTemps(key);
  // takeover tokens of processes that died holding one (see takeOver): the tokens themselves only
  // (`.pstal.lock.takeover-<inode>`; a token's temporary file, `...-<inode>.<pid>.<ms>.tmp`, is
  // another process's write in flight), and only those that name a dead holder
  for (const name of fs.readdirSync(key).filter((n) => new RegExp(`^${LOCK_FILE.replace(/\./g, '\\.')}\\.takeover-\\d+$`).test(n))) {
    let holder: number;
    try {
      holder = Number.parseInt(fs.readFileSync(path.join(key, name), 'utf8'), 10);
    } catch {
      continue; // gone meanwhile
    }
    if (Number.isInteger(holder) && !processAlive(holder)) {
      fs.rmSync(path.join(key, name), { force: true });
      removedTemps.push(name);
    }
  }
  return { file, removedTemps, takenOver, release: once(release) };
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
