/**
 * json.ts: JSON from outside files with duplicate keys refused. JSON.parse keeps the last of two
 * equal keys silently ({"database": {"v": A, "v": B}} is B alone), so a merged or hand-edited
 * ground-truth, results, proposals or config file could lose a video without a word. parseJson
 * parses with JSON.parse, then one pass over the text (a tokenizer that needs no reviver and
 * builds no second tree) checks every object's keys and names the first repeated one by its path.
 */
import * as fs from 'fs';
import { noteWholeRead } from './digests';
import { AtomicFileWriter, openRegular, readAt } from './fs';

/** A key given twice in one object: its object's path and the key (path `database.video_x`). */
export class DuplicateKeyError extends Error {
  constructor(
    readonly file: string,
    readonly path: string,
    readonly key: string,
  ) {
    super(`${file}: duplicate key ${path} (the key "${key}" appears twice in one object; JSON.parse would keep only the last)`);
    this.name = 'DuplicateKeyError';
  }
}

function segment(key: string): string {
  return /^[A-Za-z0-9_$-]+$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

interface Frame {
  /** the keys seen so far (an object), or null (an array) */
  keys: Set<string> | null;
  /** the current key (object) */
  key: string;
  /** the current element (array) */
  index: number;
}

function pathOf(stack: Frame[], depth: number, key: string): string {
  let p = '';
  for (let d = 0; d < depth; d++) {
    const f = stack[d];
    p += f.keys ? segment(f.key) : `[${f.index}]`;
  }
  p += segment(key);
  return p.startsWith('.') ? p.slice(1) : p;
}

// characters the scan stops at: 1 for '"', 2 for { [ } ] and ','; everything else (numbers,
// literals, blanks) is stepped over with one table load
const STOP = new Uint8Array(128);
STOP[34] = 1;
for (const c of '{}[],') STOP[c.charCodeAt(0)] = 2;

/**
 * The first key repeated within one object of a valid JSON text, with its path; null when there is
 * none. `text` must already have been accepted by JSON.parse (the scan does not validate).
 */
export function findDuplicateKey(text: string): { path: string; key: string } | null {
  const stack: Frame[] = [];
  let depth = 0;
  let expectKey = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c >= 128 || STOP[c] === 0) {
      i++;
      continue;
    }
    if (c === 34 /* " */) {
      // the closing quote: the next '"' not escaped by an odd run of backslashes
      let j = text.indexOf('"', i + 1);
      for (;;) {
        let k = j - 1;
        while (text.charCodeAt(k) === 92 /* \ */) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      if (expectKey) {
        let key = text.slice(i + 1, j);
        if (key.indexOf('\\') >= 0) key = JSON.parse(text.slice(i, j + 1)) as string; // "a" and "\u0061" are one key
        const top = stack[depth - 1];
        const keys = top.keys as Set<string>;
        if (keys.has(key)) return { path: pathOf(stack, depth - 1, key), key };
        keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 123 /* { */ || c === 91 /* [ */) {
      const obj = c === 123;
      const f = stack[depth];
      if (f) {
        f.keys = obj ? new Set() : null;
        f.index = 0;
      } else stack.push({ keys: obj ? new Set() : null, key: '', index: 0 });
      depth++;
      expectKey = obj;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--;
      stack[depth].keys = null; // its keys can be collected
      expectKey = false;
    } else if (c === 44 /* , */) {
      const top = stack[depth - 1];
      if (top.keys) expectKey = true;
      else top.index++;
    }
    i++;
  }
  return null;
}

/** JSON.parse of `text` (a leading BOM dropped) with duplicate keys refused; `file` names the source in errors. */
export function parseJson(text: string, file: string): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const value = JSON.parse(text) as unknown; // a syntax error is the caller's to word
  if (typeof value === 'object' && value !== null) {
    const dup = findDuplicateKey(text);
    if (dup) throw new DuplicateKeyError(file, dup.path, dup.key);
  }
  return value;
}

/** Files larger than this are read member by member (readJsonTree), not as one string. */
let treeThreshold = 128 * 1024 * 1024;

/** Sets the size above which readJsonFile reads member by member (tests); returns the previous one. */
export function setJsonTreeThreshold(bytes: number): number {
  const prev = treeThreshold;
  treeThreshold = bytes;
  return prev;
}

/**
 * A JSON file read and parsed with duplicate keys refused (errors name the file). Files larger than
 * 128 MB are read member by member (readJsonTree): V8 cannot hold a string of more than ~512 MB,
 * and an ActivityNet-scale results or proposals file is larger.
 */
export function readJsonFile(file: string, member?: MemberReviver): unknown {
  // a FIFO or a device is refused before any read (it would block, or never end)
  const { fd, size } = openRegular(file);
  let text: string;
  try {
    if (size > treeThreshold) return readJsonTree(file, member);
    const bytes = readAt(fd, size, 0);
    noteWholeRead(file, fd, bytes);
    text = bytes.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
  const value = parseJson(text, file);
  if (member) {
    // what readJsonTree would hand over: each value two levels down
    const each = (x: unknown, f: (k: string | number, v: unknown) => unknown): void => {
      if (Array.isArray(x)) x.forEach((v, i) => (x[i] = f(i, v)));
      else if (typeof x === 'object' && x !== null) for (const [k, v] of Object.entries(x)) (x as Record<string, unknown>)[k] = f(k, v);
    };
    each(value, (k, v) => {
      each(v, (k2, v2) => member([k, k2], v2));
      return v;
    });
  }
  return value;
}

/** Called with each value two levels down in a JSON file (`["train", video]`) as it is parsed; returns what to keep. */
export type MemberReviver = (path: (string | number)[], value: unknown) => unknown;

const WS = new Uint8Array(256);
for (const c of ' \t\n\r') WS[c.charCodeAt(0)] = 1;

/** The file read in chunks, byte by byte where the tree is walked, run by run where a value is captured. */
class ByteSource {
  private buf: Buffer;
  private pos = 0;
  private end = 0;
  /** file offset of buf[0] */
  private base = 0;
  private eof = false;
  constructor(
    private readonly fd: number,
    chunkBytes: number,
  ) {
    this.buf = Buffer.allocUnsafe(chunkBytes);
  }
  private refill(): boolean {
    if (this.eof) return false;
    this.base += this.end;
    this.pos = 0;
    this.end = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
    if (this.end === 0) this.eof = true;
    return this.end > 0;
  }
  offset(): number {
    return this.base + this.pos;
  }
  /** The next byte that is not a blank (not consumed), or -1 at the end of the file. */
  peek(): number {
    for (;;) {
      while (this.pos < this.end && WS[this.buf[this.pos]]) this.pos++;
      if (this.pos < this.end) return this.buf[this.pos];
      if (!this.refill()) return -1;
    }
  }
  /** Consumes the byte peek() returned (call peek() first). */
  take(): void {
    this.pos++;
  }
  /**
   * The bytes of one JSON value starting at the next non-blank byte: a container up to its closing
   * bracket, a string up to its closing quote, a number or literal up to the next ',', '}', ']' or
   * blank. Not validated here: JSON.parse of the bytes does that.
   */
  capture(): Buffer {
    this.peek();
    const parts: Buffer[] = [];
    let nest = 0;
    let inString = false;
    let escaped = false;
    let started = false;
    for (;;) {
      if (this.pos >= this.end) {
        if (!this.refill()) break;
      }
      const buf = this.buf;
      const from = this.pos;
      let i = from;
      let done = false;
      for (; i < this.end; i++) {
        const c = buf[i];
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 92 /* \ */) escaped = true;
          else if (c === 34 /* " */) {
            inString = false;
            if (nest === 0) {
              i++;
              done = true;
              break;
            }
          }
          continue;
        }
        if (c === 34) {
          inString = true;
          started = true;
        } else if (c === 123 /* { */ || c === 91 /* [ */) {
          nest++;
          started = true;
        } else if (c === 125 /* } */ || c === 93 /* ] */) {
          if (nest === 0) {
            done = true;
            break;
          }
          if (--nest === 0) {
            i++;
            done = true;
            break;
          }
        } else if (nest === 0 && (c === 44 /* , */ || (WS[c] && started))) {
          done = true;
          break;
        } else started = true;
      }
      parts.push(Buffer.from(buf.subarray(from, i))); // copied: buf is refilled
      this.pos = i;
      if (done) break;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}

function pathString(path: (string | number)[]): string {
  let p = '';
  for (const k of path) p += typeof k === 'number' ? `[${k}]` : segment(k);
  return p.startsWith('.') ? p.slice(1) : p;
}

/**
 * A JSON file of any size parsed as JSON.parse would (duplicate keys refused), without ever holding
 * its text as one string: the top-level value and its members are walked member by member, each
 * value two levels down is parsed on its own (`{"results": {video: ...}}` parses one video at a
 * time) and handed to `member`, which may replace it (a packed form). A single such value must
 * still fit in one string. Errors name the file, the byte offset and the member's path.
 */
export function readJsonTree(file: string, member?: MemberReviver, chunkBytes = 1 << 24): unknown {
  const splitDepth = 2;
  const { fd } = openRegular(file);
  try {
    const src = new ByteSource(fd, chunkBytes);
    const fail = (what: string): never => {
      throw new SyntaxError(`${file}: invalid JSON at byte ${src.offset()}: ${what}`);
    };
    const parseMember = (path: (string | number)[]): unknown => {
      const at = src.offset();
      const bytes = src.capture();
      const text = bytes.toString('utf8');
      try {
        return parseJson(text, file);
      } catch (e) {
        if (e instanceof DuplicateKeyError) {
          const p = pathString(path);
          throw new DuplicateKeyError(file, p ? `${p}${e.path.startsWith('[') ? '' : '.'}${e.path}` : e.path, e.key);
        }
        throw new SyntaxError(`${file}: invalid JSON in ${pathString(path) || 'the file'} (bytes ${at}-${at + bytes.length}): ${(e as Error).message}`);
      }
    };
    const walk = (depth: number, path: (string | number)[]): unknown => {
      let c = src.peek();
      if (depth === 0 && c === 0xef) {
        // a UTF-8 byte order mark (EF BB BF)
        for (const b of [0xef, 0xbb, 0xbf]) {
          if (src.peek() !== b) fail('a broken byte order mark');
          src.take();
        }
        c = src.peek();
      }
      if (depth >= splitDepth || (c !== 123 && c !== 91)) {
        const v = parseMember(path);
        return member && depth === splitDepth ? member(path, v) : v;
      }
      src.take();
      const close = c === 123 ? 125 : 93;
      if (c === 91) {
        const arr: unknown[] = [];
        if (src.peek() === close) {
          src.take();
          return arr;
        }
        for (;;) {
          arr.push(walk(depth + 1, [...path, arr.length]));
          const d = src.peek();
          if (d !== close && d !== 44) fail(`expected ',' or ']' in ${pathString(path) || 'the top-level array'}`);
          src.take();
          if (d === close) return arr;
        }
      }
      const obj: Record<string, unknown> = {};
      const seen = new Set<string>();
      if (src.peek() === close) {
        src.take();
        return obj;
      }
      for (;;) {
        if (src.peek() !== 34) fail(`expected a key in ${pathString(path) || 'the top-level object'}`);
        const key = parseMember([...path, '(key)']);
        if (typeof key !== 'string') fail('expected a string key');
        const k = key as string;
        if (seen.has(k)) throw new DuplicateKeyError(file, pathString([...path, k]), k);
        seen.add(k);
        if (src.peek() !== 58 /* : */) fail(`expected ':' after the key ${JSON.stringify(k)}`);
        src.take();
        const value = walk(depth + 1, [...path, k]);
        // as JSON.parse: "__proto__" is an own key, not the prototype
        if (k === '__proto__') Object.defineProperty(obj, k, { value, enumerable: true, writable: true, configurable: true });
        else obj[k] = value;
        const d = src.peek();
        if (d !== close && d !== 44) fail(`expected ',' or '}' in ${pathString(path) || 'the top-level object'}`);
        src.take();
        if (d === close) return obj;
      }
    };
    const value = walk(0, []);
    if (src.peek() !== -1) fail('unexpected data after the JSON value');
    return value;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * JSON text of `value` handed to `sink` in chunks (UTF-8, ~4 MB each), for files larger than one JS
 * string may be (V8's limit is about 512 MB: a test pass over ActivityNet 1.3's 2,250 test videos
 * can write more): objects and arrays down to `depth` levels are written member by member, deeper
 * values with JSON.stringify. Concatenated, the chunks are exactly JSON.stringify(value).
 */
export function stringifyTo(value: unknown, sink: (chunk: Buffer) => void, depth = 2): void {
  const pending: string[] = [];
  let pendingLength = 0;
  const push = (s: string): void => {
    pending.push(s);
    pendingLength += s.length;
    if (pendingLength > 1 << 22) flush();
  };
  const flush = (): void => {
    if (pending.length) sink(Buffer.from(pending.join(''), 'utf8'));
    pending.length = 0;
    pendingLength = 0;
  };
  const walk = (v: unknown, d: number): void => {
    if (d > 0 && Array.isArray(v)) {
      push('[');
      v.forEach((x, i) => {
        if (i) push(',');
        // JSON.stringify writes null for undefined and functions in arrays
        if (x === undefined || typeof x === 'function' || typeof x === 'symbol') push('null');
        else walk(x, d - 1);
      });
      push(']');
    } else if (d > 0 && v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON !== 'function') {
      push('{');
      let first = true;
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
        if (!first) push(',');
        first = false;
        push(JSON.stringify(k) + ':');
        walk(x, d - 1);
      }
      push('}');
    } else {
      push(JSON.stringify(v) ?? 'null');
    }
  };
  walk(value, depth);
  flush();
}

/** stringifyTo's chunks collected (tests, small values). */
export function stringifyChunks(value: unknown, depth = 2): Buffer[] {
  const out: Buffer[] = [];
  stringifyTo(value, (c) => out.push(c), depth);
  return out;
}

/**
 * Writes `value` as JSON to `file` atomically, chunk by chunk as it is produced (stringifyTo), so
 * that a results file of hundreds of MB is never held whole in memory; on any error the temporary
 * file is removed and `file` is untouched.
 */
export function writeJsonFileAtomic(file: string, value: unknown, depth = 2): void {
  const w = new AtomicFileWriter(file);
  try {
    stringifyTo(value, (c) => w.write(c), depth);
  } catch (e) {
    w.abort();
    throw e;
  }
  w.commit();
}
