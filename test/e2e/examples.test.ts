/**
 * examples/, test/, benchmarks/ and scripts/: every script type-checks against the library
 * (examples/tsconfig.json, test/tsconfig.json, benchmarks/tsconfig.json), and the TSPNet
 * example runs end to end at its --quick size (synthesized data, an HR-Pro base, the plug-in, detection).
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');

test('examples/*.ts type-check against the library', (t) => {
  const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'examples', 'tsconfig.json')], { cwd: root, encoding: 'utf8' });
  t.is(r.status, 0, r.stdout + r.stderr);
});

// ava runs the tests through ts-node's transpile-only mode, which checks no types: a test importing
// a name that does not exist fails only when it runs, and the GPU tests run only on a GPU (one such
// import sat unnoticed in test/gpu/cuda.test.ts). test/tsconfig.json: the library's settings, not strict.
test('test/*.ts type-check against the library (the GPU tests included)', (t) => {
  const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'test', 'tsconfig.json')], { cwd: root, encoding: 'utf8' });
  t.is(r.status, 0, r.stdout + r.stderr);
});

// benchmarks/ and scripts/ run the same way: a stage-2 bench built proposals in the shape stage 2
// took before they were packed, and nothing said so until the bench was next run.
test('benchmarks/*.ts and scripts/*.ts type-check against the library', (t) => {
  const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'benchmarks', 'tsconfig.json')], { cwd: root, encoding: 'utf8' });
  t.is(r.status, 0, r.stdout + r.stderr);
});

test('examples/tspnet-plugin.ts --quick: HR-Pro base, TSPNet, its table, detection from the base and from given proposals', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-example-tsp-'));
  try {
    const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join('examples', 'tspnet-plugin.ts'), path.join(dir, 'data'), path.join(dir, 'run'), '--quick'], {
      cwd: root, encoding: 'utf8', env: { ...process.env, TS_NODE_PROJECT: path.join(root, 'tsconfig.json') },
    });
    t.is(r.status, 0, r.stderr.slice(-3000));
    t.regex(r.stdout, /HR-Pro: stage 2 best avg mAP [\d.]+ at epoch 1/);
    t.regex(r.stdout, /TSPNet: best avg mAP [\d.]+ at iteration \d\n.*@0\.1/s);
    t.regex(r.stdout, /: \d+ base proposals from HR-Pro, \d+ detections/);
    t.regex(r.stdout, /: \d+ given proposals, \d+ detections/);
    t.true(fs.existsSync(path.join(dir, 'run', 'tspnet', 'tspnet_best.safetensors')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
