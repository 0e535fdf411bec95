// Preloaded with `node -r`: counts how often each file is opened for reading (fs.readFileSync,
// fs.openSync for reading, fs.createReadStream) and writes {path: count} as JSON to
// $PSTAL_COUNT_READS_OUT when the process exits. test/e2e/read-once.test.ts uses it.
'use strict';
const fs = require('fs');
const path = require('path');
const counts = Object.create(null);
const count = (p) => {
  if (typeof p !== 'string' && !(p instanceof URL) && !Buffer.isBuffer(p)) return; // a descriptor
  const key = path.resolve(String(p instanceof URL ? p.pathname : p));
  counts[key] = (counts[key] || 0) + 1;
};
const wrap = (name, reads) => {
  const orig = fs[name];
  fs[name] = function (p, ...rest) {
    if (reads(rest)) count(p);
    return orig.call(this, p, ...rest);
  };
};
wrap('readFileSync', () => true);
wrap('createReadStream', () => true);
const { O_WRONLY, O_RDWR } = fs.constants;
// an open for reading: no flags, 'r' / 'rs' (not 'r+'), or numeric flags without a write bit (O_NONBLOCK may be set)
wrap('openSync', ([flags]) => flags === undefined || (typeof flags === 'string' ? /^r[s]?$/.test(flags) : (flags & (O_WRONLY | O_RDWR)) === 0));
process.on('exit', () => fs.writeFileSync(process.env.PSTAL_COUNT_READS_OUT, JSON.stringify(counts)));
