#!/usr/bin/env node
// Writes the CPU addon's prebuild, prebuilds/<platform>-<arch>/pstal.node (prebuildify, N-API: one
// binary for every Node version from 18 on), so that an installed tarball needs no compiler and
// works where install scripts do not run (`npm install --ignore-scripts`, pnpm 10's default).
// `npm pack` and `npm publish` run it (the package's `prepack` script).
//
// It compiles in a staging folder (binding.gyp, native/, package.json copied there), never in the
// checkout's build/: prebuildify runs `node-gyp rebuild`, which would wipe build/ and with it the
// addon that tests and the CLI load. The target is the running Node (its headers are the ones
// node-gyp has, so nothing is downloaded); N-API makes the result the same for every version.
//
// Environment: PSTAL_PREBUILD=0 skips it (a tarball without prebuilds then compiles at install);
// PSTAL_PREBUILD_REUSE=1 keeps a prebuilds/<platform>-<arch>/pstal.node that is newer than every
// file under native/ and binding.gyp instead of compiling again.
//
// The CUDA addon is packaged apart, as the optional dependency @pstal/linux-x64-cuda
// (`node scripts/build-cuda.js --package`; `npm run prebuilds` runs both).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const platformDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const out = path.join(platformDir, 'pstal.node');

function newestSource() {
  let newest = fs.statSync(path.join(root, 'binding.gyp')).mtimeMs;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  walk(path.join(root, 'native'));
  return newest;
}

function cpuPrebuild() {
  if (process.env.PSTAL_PREBUILD === '0') {
    console.log('pstal: CPU prebuild skipped (PSTAL_PREBUILD=0)');
    return;
  }
  if (process.env.PSTAL_PREBUILD_REUSE === '1' && fs.existsSync(out) && fs.statSync(out).mtimeMs > newestSource()) {
    console.log(`pstal: CPU prebuild ${path.relative(root, out)} is newer than native/: kept`);
    return;
  }
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-prebuild-'));
  try {
    fs.cpSync(path.join(root, 'native'), path.join(staging, 'native'), { recursive: true });
    for (const f of ['binding.gyp', 'package.json']) fs.copyFileSync(path.join(root, f), path.join(staging, f));
    const bin = path.join(root, 'node_modules', '.bin');
    const env = {
      ...process.env,
      // binding.gyp asks node for node-addon-api's include folder: found from the checkout
      NODE_PATH: [path.join(root, 'node_modules'), process.env.NODE_PATH].filter(Boolean).join(path.delimiter),
      PATH: [bin, process.env.PATH].join(path.delimiter),
      // node-gyp compiles one file at a time unless told (JOBS=N overrides)
      JOBS: process.env.JOBS || 'max',
    };
    // the checkout's node-gyp, not npm's bundled one (prebuildify would find that first on PATH)
    const nodeGyp = path.join(bin, process.platform === 'win32' ? 'node-gyp.cmd' : 'node-gyp');
    if (fs.existsSync(nodeGyp)) env.PREBUILD_NODE_GYP = nodeGyp;
    // the running Node's own headers (include/node beside bin/node, as Node's tarballs and most
    // packages ship them) when npm has no nodedir set: node-gyp then downloads nothing
    const ownHeaders = path.resolve(path.dirname(process.execPath), '..');
    if (!env.npm_config_nodedir && fs.existsSync(path.join(ownHeaders, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = ownHeaders;
    const prebuildify = require.resolve('prebuildify/bin.js', { paths: [root] });
    const args = [prebuildify, '--napi', '--strip', '--target', `node@${process.versions.node}`, '--out', root, staging];
    console.log(`pstal: CPU prebuild (prebuildify in ${staging})`);
    const r = spawnSync(process.execPath, args, { cwd: staging, env, stdio: 'inherit' });
    if (r.status !== 0) {
      console.error('pstal: the CPU prebuild failed (see above): needs g++, make and python3, as `npm install` from source');
      process.exitCode = r.status || 1;
      return;
    }
    if (!fs.existsSync(out)) {
      console.error(`pstal: prebuildify made no ${path.relative(root, out)}: ${fs.existsSync(platformDir) ? fs.readdirSync(platformDir).join(', ') : 'no folder'}`);
      process.exitCode = 1;
      return;
    }
    console.log(`pstal: CPU prebuild ${path.relative(root, out)} (${fs.statSync(out).size} bytes)`);
  } finally {
    // (exit codes are set, not exited with, so that this runs)
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

cpuPrebuild();
