/**
 * A headless Chromium for the tests that render HTML (test/e2e/report.test.ts,
 * test/e2e/serve-page.test.ts), driven by puppeteer-core (which downloads no browser). The
 * browser: $PSTAL_CHROMIUM, else Debian's `chromium` package (or chromium-browser / google-chrome
 * on the PATH). When none is there it is installed with apt-get only if we run as root and CI=true
 * or PSTAL_INSTALL_CHROMIUM=1; otherwise the caller skips its test with the reason returned here.
 * withPage opens the page both tests watch (console errors, page errors, every request);
 * screenshot saves it.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export type BrowserReady = { executable: string; puppeteer: PuppeteerLike };
export type BrowserFound = BrowserReady | { reason: string };

export interface PuppeteerLike {
  launch(o: { executablePath: string; headless?: boolean | 'shell'; args?: string[] }): Promise<BrowserLike>;
}
export interface BrowserLike {
  newPage(): Promise<PageLike>;
  close(): Promise<void>;
}
export interface PageLike {
  on(event: string, f: (x: unknown) => void): void;
  setViewport(v: { width: number; height: number; deviceScaleFactor?: number }): Promise<void>;
  goto(url: string, o?: { waitUntil?: string }): Promise<unknown>;
  evaluate<T>(f: string | (() => T)): Promise<T>;
  select(selector: string, ...values: string[]): Promise<string[]>;
  screenshot(o: { path?: string; fullPage?: boolean; type?: 'png' }): Promise<unknown>;
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const f = path.join(dir, name);
    if (dir && fs.existsSync(f)) return f;
  }
  return null;
}

function findExecutable(): string | null {
  if (process.env.PSTAL_CHROMIUM) return fs.existsSync(process.env.PSTAL_CHROMIUM) ? process.env.PSTAL_CHROMIUM : null;
  for (const n of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const f = onPath(n);
    if (f) return f;
  }
  return null;
}

export function findBrowser(): BrowserFound {
  let puppeteer: PuppeteerLike;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    puppeteer = require('puppeteer-core') as PuppeteerLike;
  } catch {
    return { reason: 'puppeteer-core is not installed (a devDependency: npm install)' };
  }
  let executable = findExecutable();
  if (!executable) {
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const allowed = process.env.CI === 'true' || process.env.PSTAL_INSTALL_CHROMIUM === '1';
    if (!root || !allowed)
      return { reason: 'no Chromium (apt-get install chromium, or set PSTAL_CHROMIUM; the test installs it itself only as root with CI=true or PSTAL_INSTALL_CHROMIUM=1)' };
    const r = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'], { encoding: 'utf8', timeout: 600_000 });
    executable = findExecutable();
    if (!executable) return { reason: `apt-get install chromium failed (exit ${r.status}): ${(r.stderr ?? '').slice(-500)}` };
  }
  return { executable, puppeteer };
}

/** A page and what it did so far: its console errors and uncaught errors, and every URL it requested. */
export interface WatchedPage {
  page: PageLike;
  errors: string[];
  requests: string[];
}

/** Launches the browser, opens a 1240 x 900 page that records errors and requests, runs f on it, closes the browser. */
export async function withPage<T>(found: BrowserReady, f: (w: WatchedPage) => Promise<T>): Promise<T> {
  const browser = await found.puppeteer.launch({ executablePath: found.executable, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      const msg = m as { type(): string; text(): string };
      if (msg.type() === 'error') errors.push(msg.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (q) => requests.push((q as { url(): string }).url()));
    await page.setViewport({ width: 1240, height: 900 });
    return await f({ page, errors, requests });
  } finally {
    await browser.close();
  }
}

/** A full-page PNG of page at file, copied to $PSTAL_SCREENSHOT when set; returns the file's first 4 bytes (a PNG's: 89 50 4e 47). */
export async function screenshot(page: PageLike, file: string): Promise<number[]> {
  await page.screenshot({ path: file, fullPage: true, type: 'png' });
  if (process.env.PSTAL_SCREENSHOT) fs.copyFileSync(file, process.env.PSTAL_SCREENSHOT);
  return [...fs.readFileSync(file).subarray(0, 4)];
}
