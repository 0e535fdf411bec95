/**
 * The repository speaks of the product: no words about how the work was organised in tracked files
 * (test fixtures aside), no absolute path of the machine that wrote them (the folder above the
 * checkout, the home folder), benchmark records named by date and commit, and a README that stays a
 * newcomer's guide (at most 300 lines).
 */
import test from 'ava';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');

function trackedTextFiles(): string[] {
  let list: string[];
  try {
    list = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  } catch {
    return [];
  }
  return list.filter((f) => !f.startsWith('test/fixtures/') && fs.existsSync(path.join(root, f)) && !/\.(png|npy|pt|pkl|safetensors|node|tgz|gz)$/.test(f));
}

// written in pieces so that this file does not match itself
const WORDS = new RegExp(`\\b(${['sess' + 'ions?', 'le' + 'nt', 'lea' + 'se', 'build ' + 'machine', 'review ' + 'mend'].join('|')})\\b`, 'i');

function offending(files: string[], pattern: RegExp): string[] {
  const out: string[] = [];
  for (const f of files) {
    const text = fs.readFileSync(path.join(root, f), 'utf8');
    if (text.includes('\0')) continue;
    text.split('\n').forEach((line, i) => {
      if (pattern.test(line)) out.push(`${f}:${i + 1}: ${line.trim().slice(0, 160)}`);
    });
  }
  return out;
}

const files = trackedTextFiles();

(files.length ? test : test.skip)('no words about how the work was organised in tracked files', (t) => {
  t.true(WORDS.test('a Sess' + 'ion'), 'the pattern matches what it looks for');
  t.deepEqual(offending(files, WORDS), []);
});

(files.length ? test : test.skip)('no absolute path of this machine (the folder above the checkout, the home folder) in tracked files', (t) => {
  const places = [path.resolve(root, '..') + path.sep, os.homedir() + path.sep].filter((p) => p.length > 2 && p !== path.sep);
  const escaped = places.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  t.deepEqual(offending(files, new RegExp(escaped.join('|'))), []);
});

test('benchmark records are named by date and commit', (t) => {
  const dir = path.join(root, 'docs', 'bench');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  t.deepEqual(names.filter((n) => !/-\d{4}-\d{2}-\d{2}-[0-9a-f]{7}(-[a-z0-9]+)?\.json$/.test(n)), []);
});

test('README.md is a guide of at most 300 lines', (t) => {
  const lines = fs.readFileSync(path.join(root, 'README.md'), 'utf8').split('\n').length;
  t.true(lines <= 300, `README.md has ${lines} lines`);
});
