/**
 * progress.ts: a progress bar for long work (training iterations, test passes, synthesis) with
 * rate and ETA, plus whatever live figures the caller passes (loss, mAP). On a terminal it redraws
 * one line; elsewhere (CI, logs piped to a file) it prints a plain line at most every 10 seconds,
 * so logs stay readable.
 */
export interface ProgressOptions {
  /** what is being counted, shown after the rate: 'it', 'videos' */
  unit?: string;
  stream?: NodeJS.WriteStream;
  /** silence everything (library use, tests) */
  quiet?: boolean;
  /** the count already done when a resumed run starts (ETA counts only new work) */
  start?: number;
  /**
   * A bar for work inside other work (a test pass within training): when finished, a terminal's
   * line is cleared instead of kept, and a log gets a last line only if it got earlier ones (work
   * under 10 s leaves no trace; the caller reports the result).
   */
  transient?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class ProgressBar {
  private readonly t0 = Date.now();
  private lastPrint = 0;
  private printed = false;
  private readonly startCount: number;
  private count: number;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly total: number, private readonly o: ProgressOptions = {}) {
    this.stream = o.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
    this.startCount = o.start ?? 0;
    this.count = this.startCount;
  }

  /** Sets the count (not an increment) and redraws with the given live figures. */
  update(count: number, info: Record<string, string | number> = {}): void {
    this.count = count;
    const now = Date.now();
    const finished = count >= this.total;
    if (this.o.quiet) return;
    // a transient bar's log gets its first line after 10 s of work, not at once
    if (!this.tty && !finished && now - (this.o.transient && !this.printed ? this.t0 : this.lastPrint) < 10_000) return;
    if (this.tty && !finished && now - this.lastPrint < 100) return;
    if (finished && this.o.transient) {
      if (this.tty) this.stream.write('\r\x1b[K');
      else if (this.printed) this.stream.write(this.line(info) + '\n');
      return;
    }
    this.lastPrint = now;
    this.printed = true;
    this.stream.write((this.tty ? '\r\x1b[K' : '') + this.line(info) + (this.tty && !finished ? '' : '\n'));
  }

  /** A message above the bar (a test table), without breaking the bar's line. */
  log(text: string): void {
    if (this.o.quiet) return;
    this.stream.write((this.tty ? '\r\x1b[K' : '') + text + (text.endsWith('\n') ? '' : '\n'));
    this.lastPrint = 0;
  }

  line(info: Record<string, string | number> = {}): string {
    const elapsed = (Date.now() - this.t0) / 1000;
    const done = this.count - this.startCount;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const eta = rate > 0 ? (this.total - this.count) / rate : NaN;
    const frac = this.total > 0 ? Math.min(1, this.count / this.total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const unit = this.o.unit ?? 'it';
    const rateText = rate >= 1 || rate === 0 ? `${rate.toFixed(2)} ${unit}/s` : `${(1 / rate).toFixed(2)} s/${unit}`;
    const extra = Object.entries(info)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? (Math.abs(v) >= 100 || Number.isInteger(v) ? String(v) : v.toFixed(4)) : v}`)
      .join('  ');
    return `${this.label} [${bar}] ${this.count}/${this.total} ${rateText} elapsed ${formatDuration(elapsed)} eta ${formatDuration(eta)}${extra ? '  ' + extra : ''}`;
  }
}

/** Progress of a pass over many items, as a callback (done, total): a transient bar made at the first call. */
export type OnProgress = (done: number, total: number) => void;

export function progressCallback(label: string, o: Omit<ProgressOptions, 'transient'> = {}): OnProgress {
  let bar: ProgressBar | undefined;
  return (done, total) => {
    bar ??= new ProgressBar(label, total, { ...o, transient: true });
    bar.update(done);
  };
}
