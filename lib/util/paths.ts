/**
 * paths.ts: paths built from names found in data files, and where an output really lands.
 *
 * A video name read from a data file (a split list, then gt_full.json and the point-label csv by
 * that name) becomes a file name: features/<split>/<video>.npy, a plot <video>.svg. Every such
 * path is made by `videoFile`, which refuses a name that could reach outside its folder: one with
 * a path separator (/ or \), `.` or `..`, an absolute path, a NUL, or an empty name, naming the
 * file and the line or field the name came from.
 *
 * `realPathOf` / `samePath` compare an output with the command's inputs after resolving links
 * (and, for files that exist, by device and inode, so a hard link is the same file too).
 */
import * as fs from 'fs';
import * as path from 'path';

/** Why `name` cannot be a file name in a folder, or null when it can. */
export function nameProblem(name: string): string | null {
  if (name === '') return 'is empty';
  if (name.includes('\0')) return 'holds a NUL character';
  if (/[/\\]/.test(name)) return 'holds a path separator (/ or \\)';
  if (name === '.' || name === '..') return `is "${name}", a folder, not a name`;
  if (path.isAbsolute(name) || path.win32.isAbsolute(name) || /^[A-Za-z]:/.test(name)) return 'is an absolute path';
  return null;
}

/** `name` when it can be a file name in a folder; else an Error naming `where` (the file and line or field it came from). */
export function safeName(name: string, where: string): string {
  const why = nameProblem(name);
  if (why) throw new Error(`${where}: ${JSON.stringify(name)} is not a video name: it ${why} (a video name is a file name, <video>.npy, and must stay in its folder)`);
  return name;
}

/** DIR/<name><ext> for a name from data, refused as safeName does when it would not lie in DIR. */
export function videoFile(dir: string, name: string, ext: string, where: string): string {
  return path.join(dir, safeName(name, where) + ext);
}

/**
 * The real path of `p`, links resolved, whether or not it exists: a missing tail is joined to the
 * real path of its deepest existing folder.
 */
export function realPathOf(p: string): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch {
    const parent = path.dirname(abs);
    return parent === abs ? abs : path.join(realPathOf(parent), path.basename(abs));
  }
}

/** Whether `a` and `b` are the same file or folder (links resolved; hard links by device and inode). */
export function samePath(a: string, b: string): boolean {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return realPathOf(a) === realPathOf(b);
  }
}

/** Whether `p` is `dir` or lies inside it (links resolved). */
export function isInside(p: string, dir: string): boolean {
  const rp = realPathOf(p);
  const rd = realPathOf(dir);
  return rp === rd || rp.startsWith(rd.endsWith(path.sep) ? rd : rd + path.sep);
}
