#!/usr/bin/env node
// The pstal command: runs the compiled CLI (dist/), or the TypeScript sources through ts-node when
// there is no compiled copy, when it is older than the sources (a development checkout edited since
// its last build), or when PSTAL_TS is set.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'lib', 'cli', 'index.js');

function newestSource(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function useCompiled() {
  if (process.env.PSTAL_TS || !fs.existsSync(compiled)) return false;
  let tsNode = true;
  try {
    require.resolve('ts-node');
  } catch {
    tsNode = false;
  }
  if (!tsNode) return true;
  return fs.statSync(compiled).mtimeMs >= newestSource(path.join(root, 'lib'));
}

let cli;
if (useCompiled()) {
  cli = require(compiled);
} else {
  require('ts-node').register({ transpileOnly: true, project: path.join(root, 'tsconfig.json') });
  cli = require(path.join(root, 'lib', 'cli', 'index.ts'));
}
cli.main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { console.error(`pstal: ${e && e.stack ? e.stack : e}`); process.exitCode = 1; },
);
