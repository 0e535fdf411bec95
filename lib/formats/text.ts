/**
 * text.ts: what every reader of an outside file shares: the text of a file (BOM stripped, the file
 * named in every error; only a regular file is read, and no more than its size: a FIFO or a device
 * such as /dev/zero is an error naming it), JSON with duplicate keys refused, and the field-error
 * helper, so that each format module states only its own fields.
 */
import { DuplicateKeyError, MemberReviver, readJsonFile } from '../util/json';
import * as fs from 'fs';
import { NotRegularFileError, openRegular, readAt } from '../util/fs';
import { noteWholeRead } from '../util/digests';

/** A file's text without a leading byte-order mark; `what` names the file's role in the error. */
export function readText(file: string, what: string): string {
  let text: string;
  try {
    const { fd, size } = openRegular(file);
    try {
      const bytes = readAt(fd, size, 0);
      noteWholeRead(file, fd, bytes); // a run records the digest of its annotation files without reading them again
      text = bytes.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if (e instanceof NotRegularFileError) throw new Error(`${what} ${e.message}`);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${what} not found: ${file}`);
    throw new Error(`${what} ${file}: cannot read (${(e as Error).message})`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * A JSON file parsed with duplicate keys refused (any size: large files are parsed member by
 * member). A missing file, an unreadable one and malformed JSON each get their own message naming
 * `what` and the file.
 */
export function readJson(file: string, what: string, member?: MemberReviver): unknown {
  try {
    return readJsonFile(file, member);
  } catch (e) {
    if (e instanceof DuplicateKeyError) throw e; // its message starts with the file
    if (e instanceof NotRegularFileError) throw new Error(`${what} ${e.message}`);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${what} not found: ${file}`);
    // a system error (EACCES, EISDIR) has a code; a syntax error has none
    if (code) throw new Error(`${what} ${file}: cannot read (${(e as Error).message})`);
    if (e instanceof FormatError) throw e;
    throw new Error(`${what} ${file}: malformed JSON (${(e as Error).message})`);
  }
}

/** An error that already names its file and field (readers pass it through unchanged). */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

export const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A null-prototype record: names from data (`__proto__`, `constructor`) are plain keys in it. */
export function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** Own enumerable entries of a parsed JSON object (JSON.parse makes `__proto__` an own key). */
export function entriesOf(x: Record<string, unknown>): [string, unknown][] {
  return Object.keys(x).map((k) => [k, x[k]]);
}

/** JSON's text of a value, shortened for an error message. */
export function shown(x: unknown, max = 200): string {
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > max ? `${s.slice(0, max)}...` : s;
}
