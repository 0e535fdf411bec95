/**
 * A fresh dataset end to end through the command line, as a user bringing their own data would:
 * `pstal synth` (the GTEA annotations, synthetic D = 32 features) -> `pstal points` (simulated
 * point labels replace the shipped ones) -> `pstal check` -> `pstal run` (no --dim, a tiny
 * schedule) -> `pstal report`; then the report rendered in headless Chromium (puppeteer-core):
 * no console errors, no network request, the picker lists every test video, a screenshot.
 * PSTAL_SCREENSHOT=FILE also saves the screenshot there (of this test's tiny run; the README's is of a real run).
 */
import avaTest from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findBrowser, screenshot, withPage } from '../helpers/browser';

import { sharedDataDir, withSharedData } from '../helpers/shared-data';

const test = withSharedData(avaTest);
const DATA = sharedDataDir() ?? '';
const bin = path.resolve(__dirname, '..', '..', 'bin', 'pstal.js');
const pstal = (args: string[], cwd: string) => spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, PSTAL_TS: '1' } });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-report-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));
const TEST_VIDEOS = (DATA ? fs.readFileSync(path.join(DATA, 'GTEA', 'split_test.txt'), 'utf8') : '').split(/\r?\n/).filter((l) => l.trim());
let report = '';

/** The number cells of the last table row of a `formatMapTable` printout. */
const lastRow = (text: string): string[] => {
  const rows = [...text.matchAll(/^\|\s+([\d.]+(?:\s+\|\s+[\d.]+)+)\s+\|$/gm)];
  return rows.length ? rows[rows.length - 1][1].split(/\s+\|\s+/) : [];
};

test.serial('a fresh dataset: synth -> points -> check -> run (no --dim) -> report', (t) => {
  let r = pstal(['synth', '--annotations', path.join(DATA, 'GTEA'), '--dim', '32', '--out', 'data', '--quiet'], dir);
  t.is(r.status, 0, r.stderr);
  r = pstal(['points', '--gt', 'data/gt_full.json', '--out', 'data/point_labels/point_gaussian.csv', '--subset', 'training', '--seed', '1'], dir);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /367 point labels/);
  r = pstal(['check', '--data', 'data', '--config', 'gtea'], dir);
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /features: D = 32/);
  t.regex(r.stdout, /points per training instance: 1\.00/);
  r = pstal(['run', '--data', 'data', '--config', 'gtea', '--out', 'run', '--iterations', '40', '--test-every', '20', '--batch-size', '8', '--lr', '1e-3', '--epochs', '3', '--lr2', '1e-3', '--threads', '1', '--quiet'], dir);
  t.is(r.status, 0, r.stderr.slice(-3000));
  const runLog = r.stderr;
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'config.json'), 'utf8'));
  t.is(cfg.featureDim, 32);
  t.is(JSON.parse(fs.readFileSync(path.join(dir, 'run', 'dataset.json'), 'utf8')).data, path.join(fs.realpathSync(dir), 'data'));

  // the data folder comes from RUN/dataset.json
  r = pstal(['report', 'run', '--out', 'report.html'], dir);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, new RegExp(`per-class AP of 7 classes, ${TEST_VIDEOS.length} timeline\\(s\\)`));
  report = path.join(dir, 'report.html');
  const html = fs.readFileSync(report, 'utf8');
  // self-contained: no external script, style, image or link
  t.notRegex(html, /<(script|img|link|iframe)[^>]+(src|href)=/i);
  t.notRegex(html.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, ''), /https?:\/\//); // the SVG namespace is a name, not a fetch
  // the final table is the run's final table; the ranking counts are the run's
  const finalRow = /<h3>Final:[^<]*<\/h3><table[^>]*><thead>.*?<\/thead><tbody><tr>(.*?)<\/tr>/.exec(html);
  t.truthy(finalRow);
  const cells = [...finalRow![1].matchAll(/<td>([^<]*)<\/td>/g)].map((m) => m[1]);
  const printed = lastRow(runLog);
  t.deepEqual(cells.slice(0, 7), printed.slice(0, 7));
  t.is(cells[7], printed[9]); // avg(0.1:0.7)
  const counts = /ranking: (\d+) PP, (\d+) RP, (\d+) NP/.exec(runLog)!;
  t.regex(html, new RegExp(`<td>${counts[1]}</td><td>${counts[2]}</td><td>${counts[3]}</td>`));
  for (const c of ['close', 'open', 'pour', 'put', 'scoop', 'stir', 'take']) t.regex(html, new RegExp(`<th class="cls">${c}</th>`));
  t.regex(html, /Stage 1, best checkpoint/);
  t.regex(html, /Stage 2, best checkpoint/);
  t.regex(html, /HR-Pro stage 2: test mAP/); // the learning curves
});

const found = findBrowser();
const browserTest = 'executable' in found ? test.serial : test.skip;
browserTest(`the report in headless Chromium: no console errors, the picker lists the ${TEST_VIDEOS.length} test videos${'reason' in found ? ` (skipped: ${found.reason})` : ''}`, async (t) => {
  if (!('executable' in found)) return;
  t.truthy(report, 'the pipeline test wrote the report');
  await withPage(found, async ({ page, errors, requests }) => {
    await page.goto(`file://${report}`, { waitUntil: 'load' });
    const options = await page.evaluate<string[]>(`[...document.querySelectorAll('#video-picker option')].map((o) => o.textContent)`);
    t.is(options.length, TEST_VIDEOS.length);
    t.deepEqual(options.map((o) => o.split(' ')[0]).sort(), [...TEST_VIDEOS].sort());
    const first = await page.evaluate<string>(`document.querySelector('#timeline svg text').textContent`);
    t.regex(first, new RegExp(`^${TEST_VIDEOS[0]} \\(test\\)`));
    await page.select('#video-picker', '3');
    const fourth = await page.evaluate<string>(`document.querySelector('#timeline svg text').textContent`);
    t.regex(fourth, new RegExp(`^${TEST_VIDEOS[3]} \\(test\\)`));
    t.is(await page.evaluate<number>(`document.querySelectorAll('#per-class-ap tbody tr').length`), 8); // 7 classes + mAP
    await page.select('#video-picker', '0');
    t.deepEqual(await screenshot(page, path.join(dir, 'report.png')), [0x89, 0x50, 0x4e, 0x47]);
    t.deepEqual(errors, []);
    t.deepEqual(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')), []);
  });
});

test('metrics.svg: the curves name the run\'s own tIoU range and take mAP@0.5 at its index (ActivityNet 0.5:0.95, THUMOS14 0.1:0.7)', async (t) => {
  const { metricsSvg } = await import('../../lib/plot/metrics');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-metrics-'));
  try {
    const tiou = Array.from({ length: 10 }, (_, i) => 0.5 + 0.05 * i);
    const line = (it: number, map: number[]): string => JSON.stringify({ iteration: it, loss: 1, test: { map, average: map.reduce((a, b) => a + b) / map.length } });
    // mAP@0.5 = 0.40 (index 0 here); index 4 (@0.7) is 0.20: the old plot drew that one
    fs.writeFileSync(path.join(dir, 'stage1_metrics.jsonl'), line(10, [0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.02, 0.01]) + '\n');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ stage1: { tiou } }));
    const svg = metricsSvg(dir)!;
    t.regex(svg, /avg mAP\(0\.5:0\.95\)/);
    // one point each: x at the panel's right edge, y of 40 % in a 220-high panel from y0 = 40: 40 + 220 * 0.6 = 172
    const polylines = [...svg.matchAll(/<polyline[^>]*points="([^"]+)"/g)].map((m) => m[1]);
    t.is(polylines[1], '520.0,172.0');
    fs.rmSync(path.join(dir, 'config.json'));
    const thumos = metricsSvg(dir)!;
    t.regex(thumos, /avg mAP\(0\.1:0\.7\)/);
    t.is([...thumos.matchAll(/<polyline[^>]*points="([^"]+)"/g)].map((m) => m[1])[1], '520.0,216.0'); // index 4: 20 %
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
