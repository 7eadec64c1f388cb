// One Database handle over either a real Postgres server (the `postgres` driver) or embedded
// Postgres (PGlite, persisted under DATA_DIR). Everything above this file sees only `Db`.
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { is, SQL, sql, type Query } from 'drizzle-orm';
import { PgDialect, type PgDatabase, type PgQueryResultHKT, type PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.js';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema>;
/** Data functions take either the database or an open transaction. */
export type DbOrTx = Db | Tx;

export interface Database {
  readonly kind: 'postgres' | 'embedded';
  readonly db: Db;
  /** Connections this handle may open at once (the pool size; 1 for the embedded database). */
  readonly poolMax: number;
  /** The driver's own client, for what drizzle cannot express (COPY); null for the embedded database. */
  readonly sql: postgres.Sql | null;
  /**
   * Runs `fn` while holding a cluster-wide lock, so concurrent instances serialize (e.g.
   * migrations). On Postgres the lock takes one connection beyond the pool while `fn` runs.
   */
  withExclusiveLock<T>(key: number, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl: string | undefined;
  poolMax: number;
  connectTimeoutMs: number;
  /** Embedded only: where PGlite keeps its files; `memory://` keeps nothing. */
  dataDir: string;
}

/** Rows of a raw `db.execute()`: the two drivers shape their results differently. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

/**
 * Runs `query` as a named prepared statement. On Postgres the driver then parses and describes it
 * once per connection and afterwards sends only its parameters: one round trip, no planning. An
 * ordinary drizzle query is parsed and planned on every call, and takes two round trips (the
 * driver first asks the server for the parameter types). Only for SQL whose text never changes:
 * the driver keeps every prepared text for the life of the connection. Embedded, it is an
 * ordinary query.
 */
export async function executePrepared<T>(db: DbOrTx, name: string, query: Query | SQL, values: Record<string, unknown> = {}): Promise<T[]> {
  const built = is(query, SQL) ? dialect.sqlToQuery(query) : query;
  return rowsOf<T>(await db._.session.prepareQuery(built, undefined, name, false).execute(values));
}

const dialect = new PgDialect();

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openEmbedded(options.dataDir);
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const client = postgres(url, {
    max: options.poolMax,
    connect_timeout: Math.ceil(options.connectTimeoutMs / 1000),
    // The driver waits this long before reconnecting a closed connection, and a query that needs
    // the connection waits with it. Its default grows to 10-20 s during an outage, longer than a
    // request should hang; capped at 0.5 s, requests get their 503 promptly and the pool still
    // reconnects at most twice a second per connection.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 0.5),
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: { application_name: 'switchboard' },
    // "Custom socket" in the driver's README; its types do not declare the option.
    ...({ socket: noDelaySocket() } as object),
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  return {
    kind: 'postgres',
    db,
    poolMax: options.poolMax,
    sql: client,
    // The lock is held on a connection of its own, outside the pool: `fn` needs the pool's
    // connections, and with DATABASE_POOL_MAX=1 a lock held on the only one would wait forever.
    // Should this process die, the connection closes and Postgres releases the lock.
    async withExclusiveLock(key, fn) {
      const lock = postgres(url, {
        max: 1,
        connect_timeout: Math.ceil(options.connectTimeoutMs / 1000),
        onnotice: () => {},
        connection: { application_name: 'switchboard (lock)' },
      });
      try {
        await lock`select pg_advisory_lock(${key})`;
        try {
          return await fn();
        } finally {
          await lock`select pg_advisory_unlock(${key})`;
        }
      } finally {
        await lock.end({ timeout: 5 });
      }
    },
    close: once(() => client.end({ timeout: 5 })),
  };
}

/**
 * The driver's sockets, with Nagle's algorithm off (TCP_NODELAY), as libpq and node-postgres set
 * them: a message written in several parts, such as COPY data and its CopyDone, otherwise waits
 * for the server's delayed ACK (40 ms a COPY here). The socket is handed over while it connects
 * and the driver does the rest as with its own: TLS, the connect timeout, errors and reconnects.
 * Several hosts are tried in turn, as the driver does.
 */
function noDelaySocket(): (options: { host: string[]; port: number[]; path: string | false }) => Socket {
  let next = 0;
  return ({ host, port, path }) => {
    if (path) return connect({ path });
    const i = next++ % host.length;
    const socket = connect({ host: host[i]!, port: port[i] ?? port[0]!, noDelay: true });
    // The driver reads these for TLS server name checks, as it sets them on its own sockets.
    return Object.assign(socket, { host: host[i], port: port[i] ?? port[0] });
  };
}

async function openEmbedded(dataDir: string): Promise<Database> {
  const inMemory = dataDir.startsWith('memory://');
  const dir = inMemory ? dataDir : resolve(dataDir, 'pg');
  const release = inMemory ? async () => {} : await lockDataDir(resolve(dataDir));
  let client: PGlite;
  try {
    client = new PGlite(dir);
    await client.waitReady;
  } catch (err) {
    await release();
    throw err;
  }
  return embeddedDatabase(client, release);
}

/** A Database over an open PGlite client; closing it closes the client, then calls `release`. */
export function embeddedDatabase(client: PGlite, release: () => Promise<void> = async () => {}): Database {
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    kind: 'embedded',
    db,
    poolMax: 1,
    sql: null,
    // One process owns the embedded database, so there is nobody to serialize with.
    withExclusiveLock: (_key, fn) => fn(),
    close: once(async () => {
      await client.close();
      await release();
    }),
  };
}

/**
 * PGlite's files must only be opened by one process at a time; a second server on the same
 * DATA_DIR would corrupt them. A pid file refuses that with a clear message.
 */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const lockPath = resolve(dir, 'switchboard.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new Error(
          `DATA_DIR ${dir} is in use by process ${holder}; the embedded database allows one server at a time ` +
            '(set DATABASE_URL to run several instances on a Postgres server)',
        );
      }
      // A stale lock from a process that died: take it over.
      await rm(lockPath, { force: true });
    }
  }
  throw new Error(`could not lock DATA_DIR ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Closing twice (a test, then the app's onClose) is harmless. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

/** A real round-trip to the database. */
export async function pingDatabase(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}
