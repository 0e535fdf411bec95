#!/usr/bin/env node
// The pstal command: runs the compiled CLI (dist/), or the TypeScript sources through ts-node when
// there is no compiled copy, when PSTAL_TS is set, or in a development checkout (a .git folder
// beside lib/, with ts-node installed), whose sources may have been edited since the last build;
// PSTAL_COMPILED=1 runs dist/ there anyway. Deciding costs a few existsSync calls: no source is
// scanned at start.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'lib', 'cli', 'index.js');

function useCompiled() {
  if (process.env.PSTAL_TS || !fs.existsSync(compiled)) return false;
  if (process.env.PSTAL_COMPILED === '1' || !fs.existsSync(path.join(root, '.git'))) return true;
  try {
    require.resolve('ts-node');
    return false;
  } catch {
    return true;
  }
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
