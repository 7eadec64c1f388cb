// withExclusiveLock (db/client.ts) serializes migrations across instances. On Postgres the lock is
// held on a connection of its own, so the work inside it can use the pool, even a pool of one.
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import t, { type Test } from 'tap';
import { openDatabase, rowsOf, type Database } from '../../src/db/client.js';
import { applyMigrations, migrationStatus } from '../../src/db/migrate.js';
import { randomName, TEST_DATABASE_URL } from '../helper.js';

const needsPostgres = { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a Postgres server; the embedded database is one process)' };

/** Two handles with a pool of one connection each, on a database of their own. */
async function twoInstances(t: Test): Promise<[Database, Database]> {
  const name = `switchboard_lock_${randomName().replace(/\W/g, '_').toLowerCase()}`;
  const admin = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  const url = new URL(TEST_DATABASE_URL!);
  url.pathname = `/${name}`;
  const open = () => openDatabase({ databaseUrl: url.toString(), poolMax: 1, connectTimeoutMs: 5000, dataDir: 'memory://' });
  const databases = [await open(), await open()] as [Database, Database];
  t.teardown(() => Promise.all(databases.map((database) => database.close())));
  return databases;
}

t.test('two instances with DATABASE_POOL_MAX=1 migrate one database at once: each migration is applied once, neither waits forever', needsPostgres, async (t) => {
  const [a, b] = await twoInstances(t);
  await Promise.all([applyMigrations(a), applyMigrations(b)]);
  const status = await migrationStatus(a.db);
  t.equal(status.pending, 0, 'nothing pending');
  const recorded = rowsOf<{ n: number; distinct_n: number }>(
    await a.db.execute(sql`select count(*)::int as n, count(distinct created_at)::int as distinct_n from drizzle.__drizzle_migrations`),
  )[0]!;
  t.equal(recorded.n, status.applied, 'one row per migration');
  t.equal(recorded.distinct_n, recorded.n, 'none applied twice');
});

t.test('the lock is exclusive across instances, and the work inside it runs on the pool of one', needsPostgres, async (t) => {
  const [a, b] = await twoInstances(t);
  const events: string[] = [];
  const hold = (database: Database, name: string) =>
    database.withExclusiveLock(0x5b0a4e, async () => {
      events.push(`${name} in`);
      // The pool's only connection, while the lock is held.
      await database.db.execute(sql`select pg_sleep(0.2)`);
      events.push(`${name} out`);
    });
  await Promise.all([hold(a, 'a'), hold(b, 'b')]);
  t.ok(
    ['a in,a out,b in,b out', 'b in,b out,a in,a out'].includes(events.join(',')),
    `one holder at a time: ${events.join(', ')}`,
  );
  const locks = rowsOf<{ n: number }>(await a.db.execute(sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`))[0]!;
  t.equal(locks.n, 0, 'released afterwards');
});
