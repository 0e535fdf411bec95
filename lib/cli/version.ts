/** version.ts: the package's version, for `pstal --version` and the report. */
import * as fs from 'fs';
import * as path from 'path';

/** The package's version (package.json). */
export function version(): string {
  // the nearest package.json above this file: lib/cli/ from the sources, dist/lib/cli/ compiled
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}
