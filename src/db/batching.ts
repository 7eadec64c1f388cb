// Micro-batching for hot queries: calls made while the event loop is busy are collected and run
// as one query (one round trip, one commit) instead of one each. Nothing is cached: every call
// is answered by a query that started after the call was made, so a change committed before a
// request arrived (a revoked token, a rotated secret) is always seen by that request.
import { DatabaseWaitTimeout } from './errors.js';

export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

export interface BatchOptions<I, R> {
  /** Runs one batch; answers one Settled per item, in the same order. */
  run(items: I[]): Promise<Settled<R>[]>;
  /** Most items in one batch. */
  maxBatch: number;
  /** Most batches running at once; further calls wait for one to finish (or a full batch). */
  maxInFlight: number;
  /** Optional size of an item (e.g. bytes); a batch stops growing at maxWeight (one item always fits). */
  weight?(item: I): number;
  maxWeight?: number;
  /**
   * A call not answered within this many ms (waiting its turn included) rejects with
   * DatabaseWaitTimeout, so a request is answered 503 in time even when the database accepts
   * connections but does not answer. Its item may still be written by the batch it joined.
   */
  timeoutMs?: number;
}

/** What callers of a batched query may tune; each query has its own defaults. */
export type BatchTuning = Partial<Pick<BatchOptions<unknown, unknown>, 'maxBatch' | 'maxInFlight' | 'timeoutMs'>>;

export interface Batcher<I, R> {
  call(item: I): Promise<R>;
  readonly stats: { batches: number; items: number; largest: number };
}

interface Pending<I, R> {
  item: I;
  resolve(value: R): void;
  reject(error: unknown): void;
}

export function createBatcher<I, R>(options: BatchOptions<I, R>): Batcher<I, R> {
  let queue: Pending<I, R>[] = [];
  let inFlight = 0;
  let scheduled = false;
  const stats = { batches: 0, items: 0, largest: 0 };

  const flush = () => {
    scheduled = false;
    while (queue.length > 0 && inFlight < options.maxInFlight) {
      const size = batchSize();
      const batch = size === queue.length ? queue : queue.slice(0, size);
      queue = batch === queue ? [] : queue.slice(size);
      inFlight += 1;
      stats.batches += 1;
      stats.items += batch.length;
      stats.largest = Math.max(stats.largest, batch.length);
      void runBatch(batch);
    }
  };

  const batchSize = () => {
    const limit = Math.min(queue.length, options.maxBatch);
    if (!options.weight || options.maxWeight === undefined) return limit;
    let total = 0;
    for (let i = 0; i < limit; i++) {
      total += options.weight(queue[i]!.item);
      if (total > options.maxWeight && i > 0) return i;
    }
    return limit;
  };

  const runBatch = async (batch: Pending<I, R>[]) => {
    try {
      const results = await options.run(batch.map((pending) => pending.item));
      batch.forEach((pending, i) => {
        const result = results[i];
        if (result?.ok) pending.resolve(result.value);
        else pending.reject(result ? result.error : new Error('batch answered fewer results than items'));
      });
    } catch (err) {
      for (const pending of batch) pending.reject(err);
    } finally {
      inFlight -= 1;
      // What arrived meanwhile goes out at once, as the next batch.
      if (queue.length > 0) flush();
    }
  };

  return {
    call(item) {
      return new Promise<R>((resolve, reject) => {
        const pending: Pending<I, R> = { item, resolve, reject };
        if (options.timeoutMs !== undefined) {
          const ms = options.timeoutMs;
          const timer = setTimeout(() => {
            // Not sent yet: it never will be. Already in a batch: that batch may still write it.
            const queued = queue.indexOf(pending);
            if (queued >= 0) queue.splice(queued, 1);
            reject(new DatabaseWaitTimeout(ms));
          }, ms);
          pending.resolve = (value) => {
            clearTimeout(timer);
            resolve(value);
          };
          pending.reject = (error) => {
            clearTimeout(timer);
            reject(error);
          };
        }
        queue.push(pending);
        if (inFlight >= options.maxInFlight) return; // sent when a running batch finishes
        if (queue.length >= options.maxBatch) flush();
        else if (!scheduled) {
          // Let the requests already read from the sockets in this turn join the batch.
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
    stats,
  };
}
