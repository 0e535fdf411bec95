/**
 * json.ts: JSON from outside files with duplicate keys refused. JSON.parse keeps the last of two
 * equal keys silently ({"database": {"v": A, "v": B}} is B alone), so a merged or hand-edited
 * ground-truth, results, proposals or config file could lose a video without a word. parseJson
 * parses with JSON.parse, then one pass over the text (a tokenizer that needs no reviver and
 * builds no second tree) checks every object's keys and names the first repeated one by its path.
 */
import * as fs from 'fs';

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

/** A JSON file read and parsed with duplicate keys refused (errors name the file). */
export function readJsonFile(file: string): unknown {
  return parseJson(fs.readFileSync(file, 'utf8'), file);
}

/**
 * JSON text of `value` as chunks (UTF-8), for files larger than one JS string may be (V8's limit is
 * about 512 MB: a test pass over ActivityNet 1.3's 2,250 test videos can write more): objects and
 * arrays down to `depth` levels are written member by member, deeper values with JSON.stringify.
 * Concatenated, the chunks are exactly JSON.stringify(value).
 */
export function stringifyChunks(value: unknown, depth = 2): Buffer[] {
  const out: Buffer[] = [];
  const pending: string[] = [];
  let pendingLength = 0;
  const push = (s: string): void => {
    pending.push(s);
    pendingLength += s.length;
    if (pendingLength > 1 << 22) flush();
  };
  const flush = (): void => {
    if (pending.length) out.push(Buffer.from(pending.join(''), 'utf8'));
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
  return out;
}
