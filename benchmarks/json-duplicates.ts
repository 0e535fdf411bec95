/**
 * json-duplicates.ts: the cost of refusing duplicate keys (lib/util/json.ts) beside JSON.parse, on
 * ground-truth files. Median of 7 runs each.
 *
 *   node -r ts-node/register/transpile-only benchmarks/json-duplicates.ts FILE.json ... \
 *     [--from-points POINTS.csv SPLIT_TEST.txt]   # also an ActivityNet-style gt built from point labels
 *     [--repeat 10]                               # also each file's database repeated 10 times
 */
import * as fs from 'fs';
import { findDuplicateKey } from '../lib/util/json';

function median(fn: () => unknown): number {
  const r: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    r.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return r.sort((a, b) => a - b)[3];
}

/** ActivityNet's gt layout (subset, duration, annotations with segment and label) from point-label rows: class,start_frame,stop_frame,video_id,point. */
function fromPoints(csv: string, splitTest: string): string {
  const test = new Set(fs.readFileSync(splitTest, 'utf8').split(/\s+/));
  const db: Record<string, { subset: string; duration: number; url: string; annotations: { segment: number[]; label: string }[] }> = {};
  for (const l of fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1)) {
    const m = /^(.*),([^,]+),([^,]+),([^,]+),([^,]+)$/.exec(l);
    if (!m) continue;
    const [, label, s, e, vid] = m;
    const v = (db[vid] ??= { subset: test.has(vid) ? 'validation' : 'training', duration: 0, url: `https://www.youtube.com/watch?v=${vid.slice(2)}`, annotations: [] });
    const seg = [Number(s) / 30, Number(e) / 30];
    v.duration = Math.max(v.duration, seg[1] + 5);
    v.annotations.push({ segment: seg, label });
  }
  return JSON.stringify({ version: 'VERSION 1.3', database: db });
}

const args = process.argv.slice(2);
const inputs: [string, string][] = [];
const repeat = args.includes('--repeat') ? Number(args[args.indexOf('--repeat') + 1]) : 1;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--repeat') i++;
  else if (args[i] === '--from-points') {
    inputs.push([`ActivityNet-style gt from ${args[i + 1]}`, fromPoints(args[i + 1], args[i + 2])]);
    i += 2;
  } else inputs.push([args[i], fs.readFileSync(args[i], 'utf8')]);
}
for (const [name, text] of [...inputs]) {
  if (repeat > 1) {
    const db = (JSON.parse(text) as { database: Record<string, unknown> }).database;
    const big: Record<string, unknown> = {};
    for (let k = 0; k < repeat; k++) for (const [n, v] of Object.entries(db)) big[`${n}_${k}`] = v;
    inputs.push([`${name} x${repeat}`, JSON.stringify({ database: big })]);
  }
}
for (const [name, text] of inputs) {
  const videos = Object.keys((JSON.parse(text) as { database: object }).database).length;
  const parse = median(() => JSON.parse(text));
  const scan = median(() => findDuplicateKey(text));
  console.log(`${name}: ${(text.length / 1e6).toFixed(2)} MB, ${videos} videos: JSON.parse ${parse.toFixed(1)} ms, duplicate-key scan ${scan.toFixed(1)} ms (${((100 * scan) / parse).toFixed(0)} % of the parse)`);
}
