// The micro-batcher behind the hot paths: batches by count and weight, bounded concurrency,
// one answer per call.
import t from 'tap';
import { createBatcher, type Settled } from '../../src/db/batching.js';
import { DatabaseWaitTimeout, isDatabaseUnavailable } from '../../src/db/errors.js';

const echo = async (items: number[]): Promise<Settled<number>[]> => items.map((value) => ({ ok: true, value: value * 2 }));

t.test('calls made together go out as one batch and each gets its own answer', async (t) => {
  const seen: number[][] = [];
  const batcher = createBatcher<number, number>({ maxBatch: 10, maxInFlight: 1, run: async (items) => (seen.push(items), echo(items)) });
  t.same(await Promise.all([1, 2, 3].map((n) => batcher.call(n))), [2, 4, 6]);
  t.same(seen, [[1, 2, 3]]);
});

t.test('batches stop at maxBatch and at maxWeight, and one heavy item still goes alone', async (t) => {
  const seen: number[][] = [];
  const batcher = createBatcher<number, number>({
    maxBatch: 3,
    maxInFlight: 1,
    weight: (n) => n,
    maxWeight: 10,
    run: async (items) => (seen.push(items), echo(items)),
  });
  await Promise.all([1, 1, 1, 1, 6, 6, 50].map((n) => batcher.call(n)));
  t.same(seen, [[1, 1, 1], [1, 6], [6], [50]]);
  t.same(batcher.stats, { batches: 4, items: 7, largest: 3 });
});

t.test('no more than maxInFlight batches run at once; calls arriving meanwhile wait and go together', async (t) => {
  const gates: (() => void)[] = [];
  const sizes: number[] = [];
  let running = 0;
  let most = 0;
  const batcher = createBatcher<number, number>({
    maxBatch: 100,
    maxInFlight: 2,
    run: async (items) => {
      running += 1;
      most = Math.max(most, running);
      sizes.push(items.length);
      await new Promise<void>((resolve) => gates.push(resolve));
      running -= 1;
      return echo(items);
    },
  });
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const calls = [batcher.call(0)];
  await turn();
  calls.push(batcher.call(1));
  await turn();
  calls.push(batcher.call(2), batcher.call(3));
  await turn();
  t.same(sizes, [1, 1], 'two batches running, two calls waiting');
  gates.shift()!();
  await turn();
  t.same(sizes, [1, 1, 2], 'the waiting calls left together when a batch finished');
  while (gates.length > 0) gates.shift()!();
  t.same(await Promise.all(calls), [0, 2, 4, 6]);
  t.equal(most, 2);
});

t.test('a failing batch rejects its calls, and per-item failures reach only their caller', async (t) => {
  const failing = createBatcher<number, number>({ maxBatch: 10, maxInFlight: 1, run: async () => Promise.reject(new Error('down')) });
  const all = await Promise.allSettled([failing.call(1), failing.call(2)]);
  t.same(all.map((r) => r.status), ['rejected', 'rejected']);
  const partial = createBatcher<number, number>({
    maxBatch: 10,
    maxInFlight: 1,
    run: async (items) => items.map((n) => (n < 0 ? { ok: false, error: new Error(`bad ${n}`) } : { ok: true, value: n })),
  });
  const mixed = await Promise.allSettled([partial.call(1), partial.call(-1), partial.call(3)]);
  t.same(mixed.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  const short = createBatcher<number, number>({ maxBatch: 10, maxInFlight: 1, run: async () => [] });
  await t.rejects(short.call(1), /fewer results/);
});

t.test('timeoutMs: a call the database does not answer in time rejects as unavailable; one not sent yet never is', async (t) => {
  const sent: number[][] = [];
  let release = () => {};
  const batcher = createBatcher<number, number>({
    maxBatch: 1,
    maxInFlight: 1,
    timeoutMs: 50,
    run: (items) => {
      sent.push(items);
      return new Promise((resolve) => (release = () => resolve(items.map((value) => ({ ok: true, value })))));
    },
  });
  const started = Date.now();
  const [first, second] = await Promise.allSettled([batcher.call(1), batcher.call(2)]);
  t.ok(Date.now() - started < 1000, 'answered at the deadline, not when the database is');
  for (const outcome of [first, second]) {
    t.equal(outcome.status, 'rejected');
    const error = (outcome as PromiseRejectedResult).reason;
    t.ok(error instanceof DatabaseWaitTimeout);
    t.ok(isDatabaseUnavailable(error), 'answered 503 by the error handler');
  }
  release();
  await new Promise((resolve) => setImmediate(resolve));
  t.same(sent, [[1]], 'the queued call was dropped, not sent after its caller gave up');
  t.equal(await batcher.call(3).catch(() => 'late'), 'late', 'a later call against the stalled database times out too');
});

t.test('timeoutMs: answers in time clear their timer and keep their value', async (t) => {
  const batcher = createBatcher<number, number>({ maxBatch: 10, maxInFlight: 1, timeoutMs: 1000, run: echo });
  t.same(await Promise.all([1, 2].map((n) => batcher.call(n))), [2, 4]);
});
