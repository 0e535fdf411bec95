/**
 * The CPU backend's caching allocator (native/cpu/memory.cc): freed blocks are reused; a large
 * request (64 KiB and more) takes any larger cached block or grows a smaller one in place of a fresh
 * mapping; small requests keep to a quarter of slack. Its own process (ava runs each file alone),
 * so the cache's figures are this file's.
 */
import test from 'ava';
import { Tensor } from '../../lib/tensor/tensor';
import { cpu } from '../../lib/runtime/native';

const cached = (): number => cpu().memory_stats().cachedBytes as number;
const MiB = 1 << 20;
const floats = (bytes: number): number => bytes / 4;

test.serial('large blocks: a larger request grows a cached block, a smaller one takes it whole; values are what was written', (t) => {
  cpu().release_cached_buffers();
  t.is(cached(), 0);
  Tensor.empty([floats(2 * MiB)]).dispose();
  t.is(cached(), 2 * MiB);
  // 3 MiB: no cached block is large enough; the 2 MiB one is grown (nothing left in the cache)
  const b = Tensor.from(Float32Array.from({ length: floats(3 * MiB) }, (_, i) => i % 1000), [floats(3 * MiB)]);
  t.is(cached(), 0, 'the 2 MiB block was grown, not kept beside a fresh one');
  const back = b.toArray();
  t.true(back.every((v, i) => v === i % 1000), 'every value of the grown block reads back');
  b.dispose();
  t.is(cached(), 3 * MiB);
  // 1.5 MiB takes the 3 MiB block as it is, and gives it back whole
  const c = Tensor.zeros([floats(1.5 * MiB)]);
  t.is(cached(), 0);
  t.true(c.toArray().every((v) => v === 0));
  c.dispose();
  t.is(cached(), 3 * MiB);
  cpu().release_cached_buffers();
  t.is(cached(), 0);
});

test.serial('small blocks: reused within a quarter of slack, else a fresh one beside', (t) => {
  cpu().release_cached_buffers();
  Tensor.empty([floats(32 * 1024)]).dispose();
  t.is(cached(), 32 * 1024);
  const a = Tensor.empty([floats(30 * 1024)]); // within a quarter: the cached block
  t.is(cached(), 0);
  a.dispose();
  const b = Tensor.empty([floats(8 * 1024)]); // a quarter of it: a fresh block
  t.is(cached(), 32 * 1024);
  b.dispose();
  cpu().release_cached_buffers();
});

test.serial('64 KiB is large: an activation of a few hundred snippets at D = 256 grows a cached block', (t) => {
  cpu().release_cached_buffers();
  Tensor.empty([256, 256]).dispose(); // 256 KiB (a size class's bound, as the sizes below)
  t.is(cached(), 256 * 1024);
  const longer = Tensor.empty([384, 256]); // no cached block is large enough: the 256 KiB one is grown
  t.is(cached(), 0);
  longer.dispose();
  const shorter = Tensor.empty([128, 256]); // takes the grown block whole
  t.is(cached(), 0);
  shorter.dispose();
  cpu().release_cached_buffers();
});
