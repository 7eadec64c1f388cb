// Large webhook bodies reach Postgres by COPY in binary format, in slices of the bytes received,
// instead of as query parameters. As a parameter a body becomes a string the size of the body and
// then, inside the driver, three copies of the whole message: under 512 KB deliveries that garbage,
// not the work, set the server's peak memory (about 240 MB against about 160 MB this way).
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type postgres from 'postgres';
import { DatabaseWaitTimeout } from './errors.js';
import { withTimeout } from './health.js';

/** A batch whose bodies add up to at least this many bytes goes by COPY; smaller ones as parameters (one round trip). */
export const COPY_MIN_BYTES = 65_536;

/** The staging table: one row per body, numbered from 1 in batch order, emptied at each commit. */
export const STAGED_BODIES = 'pg_temp.switchboard_incoming_bodies';

/** The bytes of a body go to the socket in pieces of at most this size, never as one copy of the whole. */
const SLICE_BYTES = 65_536;

// PGCOPY binary format: signature, flags, header extension length; each row: field count, then
// each field's length and bytes; -1 as a field count ends the data.
const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
const END = Buffer.from([0xff, 0xff]);

/** The COPY data for rows (n integer, body bytea), n counting from 1. */
export function* copyData(bodies: Buffer[]): Generator<Buffer> {
  yield SIGNATURE;
  for (const [i, body] of bodies.entries()) {
    const head = Buffer.alloc(14);
    head.writeInt16BE(2, 0);
    head.writeInt32BE(4, 2);
    head.writeInt32BE(i + 1, 6);
    head.writeInt32BE(body.length, 10);
    yield head;
    for (let at = 0; at < body.length; at += SLICE_BYTES) yield body.subarray(at, at + SLICE_BYTES);
  }
  yield END;
}

async function writeAll(stream: Writable, chunks: Iterable<Buffer>): Promise<void> {
  for (const chunk of chunks) {
    // once() rejects if the stream fails while we wait (the driver destroys it with the error).
    if (!stream.write(chunk)) await once(stream, 'drain');
  }
  stream.end();
  await once(stream, 'finish');
}

/**
 * In one transaction: copies `bodies` into STAGED_BODIES, then runs `statement` (which reads
 * them) and answers its rows. Answers within `timeoutMs` whatever the database does: the driver
 * never settles a COPY whose connection is lost after its data was sent, and a stalled server
 * would hold the batch. Past the deadline the transaction still commits or rolls back on its own
 * (at least once, as for any 503).
 */
export async function withStagedBodies<T>(
  client: postgres.Sql,
  bodies: Buffer[],
  statement: { sql: string; params: unknown[] },
  timeoutMs: number,
): Promise<T[]> {
  const transaction = client.begin(async (tx) => {
    await tx.unsafe(`create temporary table if not exists ${STAGED_BODIES} (n integer not null, body bytea not null) on commit delete rows`);
    const stream = await tx.unsafe(`copy ${STAGED_BODIES} (n, body) from stdin (format binary)`).writable();
    await writeAll(stream, copyData(bodies));
    return tx.unsafe(statement.sql, statement.params as postgres.ParameterOrJSON<never>[]);
  });
  return (await withTimeout(transaction, timeoutMs, () => new DatabaseWaitTimeout(timeoutMs))) as unknown as T[];
}
