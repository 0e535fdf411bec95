/**
 * lib/util/progress.ts: the bar's output on a terminal and in a log, and the transient bar that
 * long test passes show inside training (cleared when done; in a log, nothing for short work).
 */
import test from 'ava';
import { ProgressBar, progressCallback } from '../../lib/util/progress';

/** A stream that records what is written; isTTY as asked. */
function sink(tty: boolean): NodeJS.WriteStream & { text: string } {
  const s = { text: '', isTTY: tty, write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

test('a bar on a terminal redraws one line and ends it; in a log it prints the finished line', (t) => {
  const tty = sink(true);
  const bar = new ProgressBar('stage 1', 3, { stream: tty, unit: 'it' });
  bar.update(1);
  bar.update(3);
  t.regex(tty.text, /^\r\x1b\[Kstage 1 \[#{8}-{16}\] 1\/3 /);
  t.regex(tty.text, /\r\x1b\[Kstage 1 \[#{24}\] 3\/3 .*\n$/);
  const log = sink(false);
  const bar2 = new ProgressBar('stage 1', 3, { stream: log });
  bar2.update(1); // the first line of a log comes at once
  bar2.update(2); // then at most one every 10 s
  bar2.update(3);
  t.is(log.text.split('\n').filter(Boolean).length, 2);
});

test('transient: a terminal line cleared when done; a log gets nothing from work under 10 s', (t) => {
  const tty = sink(true);
  const bar = new ProgressBar('stage 1 test', 2, { stream: tty, transient: true, unit: 'videos' });
  bar.update(1);
  bar.update(2);
  t.regex(tty.text, /^\r\x1b\[Kstage 1 test \[#{12}-{12}\] 1\/2 .*videos/);
  t.true(tty.text.endsWith('\r\x1b[K'), 'the last write clears the line, no newline');
  t.false(tty.text.includes('\n'));
  const log = sink(false);
  const onVideo = progressCallback('stage 1 test', { stream: log, unit: 'videos' });
  for (let i = 1; i <= 50; i++) onVideo(i, 50);
  t.is(log.text, '');
  const quiet = sink(true);
  const q = progressCallback('x', { stream: quiet, quiet: true });
  q(1, 2);
  q(2, 2);
  t.is(quiet.text, '');
});

test('transient in a log: work over 10 s gets a line every 10 s and a last one', (t) => {
  const realNow = Date.now;
  let now = 1_000_000;
  Date.now = () => now;
  try {
    const log = sink(false);
    const bar = new ProgressBar('stage 1 test', 30, { stream: log, transient: true, unit: 'videos' });
    for (let i = 1; i <= 30; i++) {
      now += 1000; // a video a second
      bar.update(i);
    }
    const lines = log.text.split('\n').filter(Boolean);
    t.is(lines.length, 3, log.text); // at 10 s, at 20 s, then the finished line
    t.regex(lines[2], /30\/30/);
  } finally {
    Date.now = realNow;
  }
});
