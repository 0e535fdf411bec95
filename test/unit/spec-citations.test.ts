/**
 * docs/spec.md and the citations of it: every "SPEC §N" in the repository's tracked sources, docs,
 * benchmarks, scripts, examples, configs and tests must name a numbered heading of docs/spec.md.
 *
 * Forms recognised (case-insensitive): `SPEC §2`, `SPEC §5.1`, `spec §3`, `SPEC.md §4`,
 * `docs/spec.md §4`, with or without a space after the sign, and chains that continue a citation on
 * the same line (`SPEC §2, §4`, `SPEC §2-§4`, `SPEC §5 "ABA", §5.1 "Test"`: every later sign on the
 * line belongs to it); also `SPEC section 6` and `SPEC sections 1 and 2`. A trailing full stop
 * (`SPEC §3.`) is punctuation, not part of the number. Inside docs/spec.md itself every bare sign
 * reference must name one of its own headings too.
 *
 * Headings: Markdown `#` lines whose text starts with a number: "## 2. HR-Pro stage 1" gives "2",
 * "### 5.1 Units" gives "5.1".
 */
import test from 'ava';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const SPEC_FILE = 'docs/spec.md';
/** The folders (and files) whose tracked files are scanned; test/fixtures holds reference outputs, not citations. */
const SCANNED = ['lib/', 'native/', 'docs/', 'benchmarks/', 'scripts/', 'test/', 'examples/', 'configs/', 'README.md'];
const SKIPPED = ['test/fixtures/'];

const SIGN = '\u00a7'; // the section sign
const NUMBER = String.raw`\d+(?:\.\d+)*`;
/** The start of a citation: "spec" (optionally ".md", optionally closed by a backtick), then the sign and a number. */
const CITE = new RegExp(String.raw`\bspec(?:\.md)?\x60?\s*${SIGN}\s*(${NUMBER})`, 'gi');
/** Any sign and number (the rest of a chain, or a reference inside the spec itself). */
const ANY_SIGN = new RegExp(String.raw`${SIGN}\s*(${NUMBER})`, 'g');
/** "SPEC section 6", "SPEC sections 1 and 2", "SPEC sections 2, 4". */
const CITE_WORDS = new RegExp(String.raw`\bspec(?:\.md)?\x60?\s+sections?\s+(${NUMBER}(?:\s*(?:,|and|or)\s*${NUMBER})*)`, 'gi');

/** Section numbers of a Markdown text's numbered headings. */
function parseHeadings(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const line of markdown.split(/\r?\n/)) {
    const m = /^#{1,6}\s+(\d+(?:\.\d+)*)\.?(?:\s|$)/.exec(line);
    if (m) out.add(m[1]);
  }
  return out;
}

/** The section numbers one line cites. `bare`: every sign reference counts (the spec's own text). */
function citationsIn(line: string, bare = false): string[] {
  const found: string[] = [];
  if (bare) {
    for (const m of line.matchAll(ANY_SIGN)) found.push(m[1]);
  } else {
    CITE.lastIndex = 0;
    const first = CITE.exec(line);
    if (first) {
      // the first citation and every sign after it on the line
      for (const m of line.slice(first.index).matchAll(ANY_SIGN)) found.push(m[1]);
    }
  }
  for (const m of line.matchAll(CITE_WORDS)) for (const n of m[1].match(new RegExp(NUMBER, 'g')) ?? []) found.push(n);
  return found;
}

/** "file:line: SPEC §N (no such heading)" for each citation of `text` that names no heading. */
function unresolved(file: string, text: string, headings: Set<string>, bare = false): string[] {
  const out: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    for (const n of citationsIn(line, bare)) if (!headings.has(n)) out.push(`${file}:${i + 1}: ${SIGN}${n} names no heading of ${SPEC_FILE}`);
  });
  return out;
}

/** Tracked files under the scanned folders (git ls-files; a directory walk where there is no git). */
function scannedFiles(): string[] {
  let files: string[];
  try {
    files = execFileSync('git', ['ls-files', '-z', '--', ...SCANNED], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 })
      .split('\0')
      .filter((f) => f.length > 0);
  } catch {
    files = [];
    const walk = (rel: string): void => {
      const abs = path.join(ROOT, rel);
      if (!fs.existsSync(abs)) return;
      if (fs.statSync(abs).isFile()) return void files.push(rel);
      for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
        if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
        walk(path.posix.join(rel, e.name));
      }
    };
    for (const s of SCANNED) walk(s.replace(/\/$/, ''));
  }
  return files.filter((f) => !SKIPPED.some((s) => f.startsWith(s)) && fs.existsSync(path.join(ROOT, f)));
}

const headings = parseHeadings(fs.readFileSync(path.join(ROOT, SPEC_FILE), 'utf8'));

test('docs/spec.md has the numbered sections the code cites: 1 to 8 and 5.1', (t) => {
  for (const n of ['1', '2', '3', '4', '5', '5.1', '6', '7', '8']) t.true(headings.has(n), `no heading numbered ${n}`);
});

test('the parser finds citations and rejects a made-up section (so the scan can fail)', (t) => {
  t.deepEqual([...parseHeadings('# Title\n## 2. HR-Pro stage 1\n### 5.1 Units\n#### 2.3. Losses\ntext 4. no heading\n')], ['2', '5.1', '2.3']);
  t.deepEqual(citationsIn(' * Stage 1 (SPEC §2 "Stage-1 inference"): proposals'), ['2']);
  t.deepEqual(citationsIn('// (spec §3.) ends a sentence; docs/spec.md §4; SPEC.md §5.1'), ['3', '4', '5.1']);
  t.deepEqual(citationsIn('class-wise soft-NMS (SPEC §2, §4, §5) and SPEC sections 1 and 6'), ['2', '4', '5', '1', '6']);
  t.deepEqual(citationsIn('a paragraph sign without the word: § 7'), []);
  t.deepEqual(citationsIn('the spec itself: § 7', true), ['7']);
  // built from parts so that this file's own text cites nothing missing
  const madeUp = ['SPEC', `${SIGN}99`].join(' ');
  t.deepEqual(citationsIn(madeUp), ['99']);
  t.deepEqual(unresolved('x.ts', `ok: SPEC ${SIGN}5.1\nbad: ${madeUp}`, headings), [`x.ts:2: ${SIGN}99 names no heading of ${SPEC_FILE}`]);
  t.deepEqual(unresolved('y.ts', ['SPEC', `${SIGN}2, ${SIGN}9.9`].join(' '), headings), [`y.ts:1: ${SIGN}9.9 names no heading of ${SPEC_FILE}`]);
});

test('every spec citation in the tracked files names a heading of docs/spec.md', (t) => {
  const files = scannedFiles();
  t.true(files.length > 50, `only ${files.length} files scanned: is the repository root ${ROOT}?`);
  const bad: string[] = [];
  let citations = 0;
  for (const f of files) {
    const buf = fs.readFileSync(path.join(ROOT, f));
    if (buf.includes(0)) continue; // binary (images)
    const text = buf.toString('utf8');
    if (!/spec|\u00a7/i.test(text)) continue;
    const own = f === SPEC_FILE;
    for (const line of text.split(/\r?\n/)) citations += citationsIn(line, own).length;
    bad.push(...unresolved(f, text, headings, own));
  }
  t.true(citations > 50, `only ${citations} citations found: has the citation form changed?`);
  t.deepEqual(bad, [], `citations that name no heading of ${SPEC_FILE}:\n${bad.join('\n')}`);
});
