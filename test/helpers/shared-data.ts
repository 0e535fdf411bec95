/**
 * Where the real annotations are (THUMOS14, GTEA, BEOID, ActivityNet 1.3): PSTAL_DATA, else
 * ../shared/data beside the repository root, as CI lays it out. Tests that need them skip, naming
 * what to set, when neither exists.
 */
import * as fs from 'fs';
import * as path from 'path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The annotation folder, or undefined when it is not on this machine. */
export function sharedDataDir(): string | undefined {
  const dir = process.env.PSTAL_DATA ?? path.resolve(REPO_ROOT, '..', 'shared', 'data');
  return fs.existsSync(dir) ? dir : undefined;
}

/** Why a test that needs the annotations did not run. */
export const NO_SHARED_DATA = 'real annotations not found: set PSTAL_DATA to the folder holding THUMOS14/, GTEA/, BEOID/, ActivityNet1.3/ (default ../shared/data beside the repository)';

/**
 * ava's `test` for a file that needs the annotations: itself where they exist; otherwise every test
 * is registered skipped with a title saying what to set, and the hooks do nothing.
 */
export function withSharedData<T extends TestFn>(test: T): T {
  if (sharedDataDir()) return test;
  const skipped = (title: string, ...rest: any[]) => test.skip(`${title} (skipped: ${NO_SHARED_DATA})`, ...rest);
  const noop = () => undefined;
  return Object.assign(skipped, {
    serial: Object.assign(skipped, { skip: skipped }), skip: skipped,
    before: noop, beforeEach: noop, after: Object.assign(noop, { always: noop }), afterEach: Object.assign(noop, { always: noop }),
  }) as unknown as T;
}

type TestFn = { skip: (title: string, ...rest: any[]) => unknown };
