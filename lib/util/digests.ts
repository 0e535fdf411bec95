/**
 * digests.ts: the digest of each file a reader has just read whole, kept with the file's size and
 * modification time, so that a run recording its inputs (lib/train/resume.ts) does not read the
 * annotation files a second time. A file changed since (another size or time) is read again.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

interface Seen {
  size: number;
  mtimeMs: number;
  digest: string;
}

const seen = new Map<string, Seen>();

/** The digest's form: the first 16 hex digits of the sha256 of the bytes. */
export function digestOfBytes(bytes: Uint8Array): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`;
}

/** A reader read `bytes`, the whole of `file` as `fd` (open) holds it. */
export function noteWholeRead(file: string, fd: number, bytes: Uint8Array): void {
  const st = fs.fstatSync(fd);
  if (st.size !== bytes.length) return;
  seen.set(path.resolve(file), { size: st.size, mtimeMs: st.mtimeMs, digest: digestOfBytes(bytes) });
}

/** The digest of a file read whole since it last changed, or undefined. */
export function digestIfRead(file: string): string | undefined {
  const s = seen.get(path.resolve(file));
  if (!s) return undefined;
  const st = fs.statSync(file);
  return st.size === s.size && st.mtimeMs === s.mtimeMs ? s.digest : undefined;
}
