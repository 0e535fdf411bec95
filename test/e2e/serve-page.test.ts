/**
 * The page `pstal serve` answers GET / with, in headless Chromium (test/helpers/browser.ts, as the
 * report's test): a .npy file dropped on it (a drop event carrying the file) is posted to the
 * server, and the timeline picture and the detection list appear, listing what /v1/detect answers
 * for the same file; no console error, no request but to the server. PSTAL_SCREENSHOT=FILE saves
 * the screenshot there; PSTAL_SERVE_MODEL=RUN with PSTAL_SERVE_FEATURES=FILE.npy shows that model
 * and video instead of this test's small run (docs/serve-page.png is of the demo's run).
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findBrowser, screenshot, withPage } from '../helpers/browser';
import { tinyRun } from '../helpers/tiny-run';
import { startServer, Server } from '../../lib/serve/server';

const found = findBrowser();
const browserTest = 'executable' in found ? test.serial : test.skip;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-serve-page-'));
test.after.always(() => fs.rmSync(root, { recursive: true, force: true }));

browserTest(`drop a .npy on the page: the timeline and the detection list appear${'reason' in found ? ` (skipped: ${found.reason})` : ''}`, async (t) => {
  if (!('executable' in found)) return;
  let model = process.env.PSTAL_SERVE_MODEL;
  let file = process.env.PSTAL_SERVE_FEATURES;
  if (!model || !file) {
    const tiny = await tinyRun(root);
    model = tiny.run;
    file = tiny.features[3];
  }
  const server: Server = await startServer({ model, port: 0, workers: 1 });
  try {
    const bytes = fs.readFileSync(file);
    const name = path.basename(file, '.npy');
    const expected = (await (await fetch(`${server.url}/v1/detect?name=${name}`, { method: 'POST', headers: { 'content-type': 'application/x-npy' }, body: bytes })).json()) as { detections: { class: string; score: number }[] };
    await withPage(found, async ({ page, errors, requests }) => {
      await page.goto(`${server.url}/`, { waitUntil: 'load' });
      t.regex(await page.evaluate<string>(`document.getElementById('status').textContent`), /No video yet/);
      // a drop event carrying the file, as the browser dispatches when a file is dragged onto the zone
      await page.evaluate<void>(`(() => {
        const bytes = Uint8Array.from(atob(${JSON.stringify(bytes.toString('base64'))}), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], ${JSON.stringify(path.basename(file))}, { type: 'application/octet-stream' }));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      })()`);
      let rows = 0;
      for (let i = 0; i < 200 && rows === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        rows = await page.evaluate<number>(`document.querySelectorAll('#detections tbody tr').length`);
      }
      t.is(rows, expected.detections.length);
      t.true(rows > 0, 'the video has detections');
      const firstRow = await page.evaluate<string[]>(`[...document.querySelectorAll('#detections tbody tr:first-child td')].map((td) => td.textContent)`);
      t.is(firstRow[1], expected.detections[0].class);
      t.is(firstRow[4], expected.detections[0].score.toFixed(3));
      const title = await page.evaluate<string>(`document.querySelector('#timeline svg text').textContent`);
      t.regex(title, new RegExp(`^${name}: ${rows} detection\\(s\\)`));
      t.is(await page.evaluate<number>(`document.querySelectorAll('#timeline svg polyline').length`) > 0, true, 'the score curves are drawn');
      t.regex(await page.evaluate<string>(`document.getElementById('status').textContent`), new RegExp(`${name}: \\d+ snippets, ${rows} detection`));
      t.deepEqual(await screenshot(page, path.join(root, 'serve-page.png')), [0x89, 0x50, 0x4e, 0x47]);
      t.deepEqual(errors, []);
      t.deepEqual(requests.filter((u) => !u.startsWith(server.url)), []);
    });
  } finally {
    await server.close();
  }
});
