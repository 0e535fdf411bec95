/**
 * The library's layers: lib/train (the training loop every method shares) and lib/plot (pictures
 * drawn from plain data) sit below the methods, so no file of theirs imports from lib/models.
 * Every import, export-from, require and import() of their .ts files is resolved and checked.
 */
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';

const LIB = path.resolve(__dirname, '..', '..', 'lib');

/** The lib-relative modules a file names (relative specifiers only; packages are skipped). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const found: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]*)['"]/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) found.push(path.relative(LIB, path.resolve(path.dirname(file), m[1])));
  return found;
}

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

for (const layer of ['train', 'plot']) {
  test(`lib/${layer} imports nothing from lib/models`, (t) => {
    const files = tsFiles(path.join(LIB, layer));
    t.true(files.length > 0);
    const bad = files.flatMap((f) => importsOf(f).filter((m) => m === 'models' || m.startsWith(`models${path.sep}`)).map((m) => `${path.relative(LIB, f)} -> lib/${m}`));
    t.deepEqual(bad, []);
  });
}
