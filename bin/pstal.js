#!/usr/bin/env node
// The pstal command: runs the compiled CLI (dist/), or the TypeScript sources through ts-node in a
// development checkout that has not been compiled yet.
'use strict';
const fs = require('fs');
const path = require('path');
const compiled = path.join(__dirname, '..', 'dist', 'lib', 'cli', 'index.js');
let cli;
if (fs.existsSync(compiled) && !process.env.PSTAL_TS) {
  cli = require(compiled);
} else {
  require('ts-node').register({ transpileOnly: true, project: path.join(__dirname, '..', 'tsconfig.json') });
  cli = require(path.join(__dirname, '..', 'lib', 'cli', 'index.ts'));
}
cli.main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { console.error(`pstal: ${e && e.stack ? e.stack : e}`); process.exitCode = 1; },
);
