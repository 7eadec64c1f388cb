// A database upgraded from a version without the hash chain: the audit rows already there are
// chained once, in the order they were written, when the migration runs; never again after that.
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import t, { type Test } from 'tap';
import { auditChainHeads, verifyAuditChains } from '../../src/db/audit-chain.js';
import { auditRow, recordAuditEvents } from '../../src/db/audit-events.js';
import { openDatabase, rowsOf, type Database } from '../../src/db/client.js';
import { uuidv7 } from '../../src/db/ids.js';
import { applyMigrations, MIGRATIONS_FOLDER } from '../../src/db/migrate.js';
import { isolatedDatabaseEnv, TEST_DATABASE_URL } from '../helper.js';

/** The migrations folder as it was before the hash chain (whatever number the chain's migration has). */
async function migrationsBeforeChain(test: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-migrations-'));
  test.teardown(() => rm(dir, { recursive: true, force: true }));
  const journal = JSON.parse(await readFile(join(MIGRATIONS_FOLDER, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  const cut = journal.entries.findIndex((entry) => entry.tag.endsWith('_audit_chain'));
  if (cut < 0) throw new Error('no audit_chain migration in the journal');
  await mkdir(join(dir, 'meta'));
  for (const entry of journal.entries.slice(0, cut)) await cp(join(MIGRATIONS_FOLDER, `${entry.tag}.sql`), join(dir, `${entry.tag}.sql`));
  await writeFile(join(dir, 'meta/_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, cut) }));
  return dir;
}

async function freshDatabase(test: Test): Promise<Database> {
  const env = TEST_DATABASE_URL ? await isolatedDatabaseEnv(test) : { DATABASE_URL: '' };
  const database = await openDatabase({ databaseUrl: env.DATABASE_URL || undefined, poolMax: 4, connectTimeoutMs: 5000, dataDir: 'memory://' });
  test.teardown(() => database.close());
  return database;
}

t.test('rows written before the chain existed are chained once, in id order, when the migration runs', async (t) => {
  const database = await freshDatabase(t);
  const migrationsFolder = await migrationsBeforeChain(t);
  if (database.kind === 'postgres') await migratePostgres(database.db as unknown as PostgresJsDatabase, { migrationsFolder });
  else await migratePglite(database.db as unknown as PgliteDatabase, { migrationsFolder });

  // What an older version wrote: database-side timestamps (microseconds), jsonb details, counts.
  const [a, b] = [uuidv7(), uuidv7()];
  await database.db.execute(sql`insert into organizations (id, name, slug) values (${a}, 'A', ${`a-${a.slice(-8)}`}), (${b}, 'B', ${`b-${b.slice(-8)}`})`);
  const legacy: { id: string; org: string | null }[] = [];
  for (const org of [null, a, b, a, a, null, b, a]) {
    const id = uuidv7();
    legacy.push({ id, org });
    await database.db.execute(sql`
      insert into audit_events (id, organization_id, actor_type, actor_id, client_ip, action, outcome, details, count)
      values (${id}, ${org}, 'anonymous', 'k1', '192.0.2.1', 'auth.failed', 'failure', ${JSON.stringify({ reason: 'invalid_secret', nested: { z: 1, a: [1.5, 'x'] } })}::jsonb, 3)`);
  }

  await applyMigrations(database);
  const rows = rowsOf<{ id: string; organization_id: string | null; seq: string | number }>(
    await database.db.execute(sql`select id, organization_id, seq from audit_events order by id`),
  );
  const seqs = (org: string | null) => rows.filter((row) => row.organization_id === org).map((row) => Number(row.seq));
  t.same(seqs(null), [1, 2], 'platform chain in id order');
  t.same(seqs(a), [1, 2, 3, 4]);
  t.same(seqs(b), [1, 2]);
  const reports = await verifyAuditChains(database.db);
  t.same(reports.map((report) => [report.chain, report.ok, report.events]), [['platform', true, 2], ...[[a, true, 4], [b, true, 2]].sort()]);
  const heads = await auditChainHeads(database.db);
  t.same(heads.map((head) => [head.chain, head.seq]), [['platform', 2], ...[[a, 4], [b, 2]].sort()]);

  // New events continue the chains.
  await recordAuditEvents(database.db, [
    auditRow({ actorType: 'system', actorId: 'test', clientIp: null, requestId: null }, a, { action: 'api_key.created' }),
    auditRow({ actorType: 'system', actorId: 'test', clientIp: null, requestId: null }, null, { action: 'organization.created' }),
  ]);
  t.match(await verifyAuditChains(database.db, { organizationId: a }), [{ ok: true, events: 5, head: { seq: 5 } }]);

  // A row written later without a place in the chain is reported, and the next migration run does not adopt it.
  const stray = uuidv7();
  await database.db.execute(sql`insert into audit_events (id, organization_id, actor_type, action, outcome) values (${stray}, ${b}, 'system', 'x.y', 'success')`);
  await applyMigrations(database);
  t.match(await verifyAuditChains(database.db, { organizationId: b }), [{ ok: false, first_break: { event_id: stray, seq: null, reason: 'unchained' } }]);
});

t.test('a database with no audit rows starts its chains with the first event', async (t) => {
  const database = await freshDatabase(t);
  await applyMigrations(database);
  t.same(await auditChainHeads(database.db), []);
  t.same(await verifyAuditChains(database.db), [{ chain: 'platform', events: 0, head: null, ok: true }]);
});
