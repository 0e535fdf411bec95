/**
 * Packaging: the tarball `npm pack` makes carries the CPU addon's prebuild (the `prepack` script,
 * scripts/prebuild.js) and the compiled library, and it trains and detects once installed into a
 * fresh project, three ways, with every compiler replaced by a failing stub and no network (npm
 * --offline, from the cache the checkout's `npm install` filled):
 *
 *   1. `npm install pstal ts-node typescript@5` (its install script runs: node-gyp-build takes the
 *      prebuild; npm 11.19 lists it as "not yet covered by allowScripts", and with
 *      strict-allow-scripts refuses the install until the project approves or denies it: denied,
 *      it is 3.), a commonjs tsconfig, and a TypeScript script run with ts-node (type-checked:
 *      pstal's .d.ts files are compiled with it);
 *   2. an ES module (`.mjs`) that imports pstal's named exports;
 *   3. `npm install --ignore-scripts` (and pnpm 10's default: no install script runs) and plain
 *      `require('pstal')`.
 *
 * The tarball is made once (test/helpers/pack.ts: in a staging copy, so the checkout's build/, which
 * the test files running beside this one load, is never rebuilt).
 */
import test from 'ava';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { installProject, noCompilers, packOnce, Packed } from '../helpers/pack';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-pack-'));
const PLATFORM = `${process.platform}-${process.arch}`;
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: `${noCompilers(path.join(tmp, 'no-compilers'))}${path.delimiter}${process.env.PATH}`,
  npm_config_build_from_source: 'false',
  npm_config_offline: 'true',
};
// the test runner's own settings are not the projects'
for (const k of ['NODE_OPTIONS', 'TS_NODE_TRANSPILE_ONLY', 'TS_NODE_PROJECT', 'PSTAL_ADDON', 'PREBUILDS_ONLY']) delete env[k];

let packed: Packed | undefined;
let packError: Error | undefined;
test.before(() => {
  try {
    packed = packOnce(tmp, { ...process.env, PSTAL_PREBUILD: '' });
  } catch (e) {
    packError = e as Error;
  }
});
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

function tarball(): string {
  if (!packed) throw new Error(`npm pack failed: ${packError?.message}\n${(packError as { stderr?: string })?.stderr ?? ''}`);
  return packed.tarball;
}

// The library's README calls, small: a synthesized dataset of 8 videos of width 16, three stage-1
// iterations (the best checkpoint is written at the test), then detection on a test video. Prints
// one JSON line the test reads.
const TRAIN_BODY = `
  const dir = process.argv[2];
  const dim = 16;
  await data.synthesizeDataset({ out: path.join(dir, 'data'), dim, seed: 0, videos: 8, knobs: { durationScale: 0.2 } });
  const config = data.loadConfig('thumos14', { featureDim: dim });
  const dataset = data.loadDataset(path.join(dir, 'data'), config);
  const ctx = hrpro.stageContext(dataset, { out: path.join(dir, 'run'), quiet: true, log: () => undefined });
  const cfg1 = hrpro.stage1ConfigFrom(config, { iterations: 3, testEvery: 3, batchSize: 2, seed: 0 });
  const s1 = await hrpro.trainStage1(ctx, cfg1);
  s1.model.dispose();
  const model = hrpro.loadHrPro(path.join(dir, 'run'));
  const video = dataset.test[0];
  const found = hrpro.detect(model, { data: video.features, shape: [video.T, video.D] }, { name: video.name });
  model.dispose();
  console.log(JSON.stringify({ iteration: s1.iteration, bestMap: s1.bestMap, detections: found.detections.length, first: found.detections[0], backend: native.cpu().backend }));
`;

interface RunResult {
  iteration: number;
  bestMap: number;
  detections: number;
  first: { label: string; score: number; segment: [number, number] };
  backend: string;
}

function checkRun(t: { is: (a: unknown, b: unknown, m?: string) => void; true: (a: boolean, m?: string) => void }, out: string): void {
  const r = JSON.parse(out.trim().split('\n').pop()!) as RunResult;
  t.is(r.iteration, 3, out);
  t.is(r.backend, 'cpu');
  t.true(Number.isFinite(r.bestMap) && r.bestMap >= 0, `bestMap ${r.bestMap}`);
  t.true(r.detections > 0, `${r.detections} detections`);
  t.true(typeof r.first.label === 'string' && r.first.segment[1] > r.first.segment[0] && Number.isFinite(r.first.score), JSON.stringify(r.first));
}

/** The installed package's addon comes from its prebuilds folder, and nothing was compiled. */
function checkPrebuildLoaded(t: { is: (a: unknown, b: unknown, m?: string) => void; false: (a: boolean, m?: string) => void }, app: string): void {
  const pkg = path.join(app, 'node_modules', 'pstal');
  t.false(fs.existsSync(path.join(pkg, 'build')), 'nothing was compiled at install');
  const found = execFileSync(process.execPath, ['-p', "require('node-gyp-build').path(require('path').dirname(require.resolve('pstal/package.json')))"], { cwd: app, env, encoding: 'utf8' }).trim();
  t.is(path.relative(pkg, fs.realpathSync(found)), path.join('prebuilds', PLATFORM, 'pstal.node'));
}

test.serial('the npm pack tarball carries the CPU prebuild and the compiled library, not build/', (t) => {
  tarball();
  const files = packed!.files;
  t.true(files.includes(`prebuilds/${PLATFORM}/pstal.node`), files.filter((f) => f.startsWith('prebuilds/')).join(', ') || 'no prebuilds/');
  t.true(files.includes('dist/lib/index.js') && files.includes('dist/lib/index.d.ts'), 'dist/lib');
  t.false(files.some((f) => f.startsWith('build/') || f.startsWith('build-cuda/')), 'no build folder');
  t.false(files.some((f) => f.startsWith('node_modules/')), 'no node_modules');
});

test.serial('1. npm install pstal ts-node typescript@5, commonjs tsconfig: a TypeScript script trains and detects (ts-node, type-checked)', (t) => {
  const app = path.join(tmp, 'app-ts-node');
  const npm = installProject(app, tarball(), { extra: { typescript: '^5', 'ts-node': '^10' }, npmArgs: ['--foreground-scripts'], env });
  // the install script ran (node-gyp-build took the prebuild; scripts/build-cuda.js found nothing to build with)
  t.regex(npm, /pstal: CUDA backend skipped/, npm);
  checkPrebuildLoaded(t, app);
  fs.writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'commonjs', target: 'es2022', moduleResolution: 'node', strict: true, esModuleInterop: true } }, null, 2),
  );
  fs.writeFileSync(path.join(app, 'train.ts'), `import * as path from 'path';\nimport { data, hrpro, native } from 'pstal';\n\nasync function main(): Promise<void> {${TRAIN_BODY}}\nmain().catch((e) => { console.error(e); process.exitCode = 1; });\n`);
  const out = execFileSync(path.join(app, 'node_modules', '.bin', 'ts-node'), ['train.ts', 'work'], { cwd: app, env, encoding: 'utf8' });
  checkRun(t, out);
  // and what ts-node type-checks is caught: a wrong argument type fails to compile
  fs.writeFileSync(path.join(app, 'bad.ts'), "import { data } from 'pstal';\ndata.loadConfig(42);\n");
  const e = t.throws(() => execFileSync(path.join(app, 'node_modules', '.bin', 'ts-node'), ['bad.ts'], { cwd: app, env, encoding: 'utf8', stdio: 'pipe' }));
  t.regex(String((e as { stderr?: string }).stderr), /TS2345/);
});

test.serial('2. an ES module (.mjs) imports pstal\'s named exports: trains and detects', (t) => {
  const app = path.join(tmp, 'app-esm');
  installProject(app, tarball(), { env });
  checkPrebuildLoaded(t, app);
  fs.writeFileSync(path.join(app, 'train.mjs'), `import * as path from 'node:path';\nimport { data, hrpro, native } from 'pstal';\n${TRAIN_BODY}`);
  checkRun(t, execFileSync(process.execPath, ['train.mjs', 'work'], { cwd: app, env, encoding: 'utf8' }));
  // the default import is the same module object
  const same = execFileSync(process.execPath, ['--input-type=module', '-e', "import pstal, { hrpro } from 'pstal'; console.log(pstal.hrpro === hrpro)"], { cwd: app, env, encoding: 'utf8' });
  t.is(same.trim(), 'true');
});

test.serial('3. npm install --ignore-scripts (no install script runs), plain require: trains and detects', (t) => {
  const app = path.join(tmp, 'app-ignore-scripts');
  installProject(app, tarball(), { npmArgs: ['--ignore-scripts'], env });
  checkPrebuildLoaded(t, app);
  fs.writeFileSync(path.join(app, 'train.js'), `const path = require('path');\nconst { data, hrpro, native } = require('pstal');\n(async () => {${TRAIN_BODY}})().catch((e) => { console.error(e); process.exitCode = 1; });\n`);
  checkRun(t, execFileSync(process.execPath, ['train.js', 'work'], { cwd: app, env, encoding: 'utf8' }));
  // the CLI from the same install
  const v = execFileSync(path.join(app, 'node_modules', '.bin', 'pstal'), ['--version'], { cwd: app, env, encoding: 'utf8' });
  t.regex(v, /0\.\d+\.\d+/);
});
