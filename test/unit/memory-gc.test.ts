/**
 * The native memory V8 is told about (native/common/buffer.cc, report_live): the peak of live
 * bytes, so that buffers rising and falling within a training step do not each bring a full
 * garbage collection, while memory held past the peak (a leak) is still reported.
 */
import test from 'ava';
import { constants, PerformanceObserver } from 'perf_hooks';
import { Tensor } from '../../lib/tensor/tensor';

const MB = 1 << 20;

/** Major (mark-compact) collections while `body` runs, as Node's performance timeline reports them. */
async function majorGcs(body: () => Promise<void>): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) n++;
  });
  obs.observe({ entryTypes: ['gc'] });
  try {
    await body();
    await new Promise((r) => setTimeout(r, 50)); // the timeline delivers its entries asynchronously
  } finally {
    obs.disconnect();
  }
  return n;
}

test.serial('buffers that rise and fall by 96 MB, 30 times, bring no more than two major collections', async (t) => {
  const gcs = await majorGcs(async () => {
    for (let i = 0; i < 30; i++) {
      const a = Tensor.zeros([24 * MB]); // 96 MB
      const b = Tensor.zeros([8 * MB]);
      a.dispose();
      b.dispose();
      await new Promise((r) => setImmediate(r)); // let incremental marking finish, as a training loop would
    }
  });
  // Reported buffer by buffer, each rise of 96 MB (> V8's 64 MB external-memory step) started one.
  t.true(gcs <= 2, `${gcs} major collections`);
});

test.serial('tensors never disposed are still collected: their memory stays bounded', async (t) => {
  const { cpu } = await import('../../lib/runtime/native');
  const live = (): number => cpu().memory_stats().liveBytes;
  const before = live();
  let most = 0;
  for (let i = 0; i < 48; i++) {
    Tensor.zeros([16 * MB]); // 64 MB, dropped without dispose()
    await new Promise((r) => setImmediate(r)); // finalizers run when the event loop turns
    most = Math.max(most, live() - before);
  }
  // 3 GB were allocated; reported to V8, they bring collections that free the dropped wrappers.
  t.true(most < 1536 * MB, `live bytes rose to ${(most / MB).toFixed(0)} MB above the start`);
});
