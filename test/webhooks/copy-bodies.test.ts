// On Postgres, a batch whose bodies add up to COPY_MIN_BYTES reaches the database by COPY into a
// staging table (db/copy-bodies.ts) instead of as parameters: the same rows, the same answers.
import { randomUUID } from 'node:crypto';
import { inArray } from 'drizzle-orm';
import fc from 'fast-check';
import type postgres from 'postgres';
import t, { type Test } from 'tap';
import { openDatabase } from '../../src/db/client.js';
import { COPY_MIN_BYTES, copyData } from '../../src/db/copy-bodies.js';
import { storeDeliveries, type CopyTarget } from '../../src/db/deliveries.js';
import { webhookDeliveries } from '../../src/db/schema.js';
import { build, createOrg, createWebhookWithRow, isolatedDatabaseEnv, TEST_DATABASE_URL, type WebhookWithRow } from '../helper.js';
import { newDelivery } from '../support/deliveries.js';
import { githubHeaders } from '../support/signing.js';
import { proxiedUrl, startTcpProxy } from '../support/tcp-proxy.js';

const needsPostgres = { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (COPY is used on Postgres only; the embedded database takes every body as a parameter)' };

/** A CopyTarget over `sql` that counts the transactions it opens. */
function countingCopy(sql: postgres.Sql, timeoutMs = 10_000): { copy: CopyTarget; transactions: () => number } {
  let count = 0;
  const counted = new Proxy(sql, {
    get(target, property, receiver) {
      if (property === 'begin') count += 1;
      return Reflect.get(target, property, receiver);
    },
  });
  return { copy: { sql: counted, timeoutMs }, transactions: () => count };
}

const delivery = (hook: WebhookWithRow, body: Buffer, deliveryKey: string | null = null) =>
  newDelivery(hook, body, { deliveryKey, contentType: 'application/octet-stream', headers: { 'x-test': 'copy' } });

async function storedBodies(t: Test, app: Awaited<ReturnType<typeof build>>, ids: string[]) {
  const rows = await app.db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.id, ids));
  t.equal(rows.length, new Set(ids).size, 'one row per id');
  return new Map(rows.map((row) => [row.id, row]));
}

t.test('COPY data is the PGCOPY binary format: signature, numbered rows with their lengths, end marker', async (t) => {
  const bodies = [Buffer.from('ab'), Buffer.alloc(0), Buffer.alloc(70_000, 7)];
  const data = Buffer.concat([...copyData(bodies)]);
  t.same(data.subarray(0, 11), Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), 'signature');
  t.equal(data.readInt32BE(11), 0, 'no flags');
  t.equal(data.readInt32BE(15), 0, 'no header extension');
  let at = 19;
  for (const [i, body] of bodies.entries()) {
    t.equal(data.readInt16BE(at), 2, 'two fields');
    t.equal(data.readInt32BE(at + 2), 4, 'n is an int4');
    t.equal(data.readInt32BE(at + 6), i + 1, 'numbered from 1');
    t.equal(data.readInt32BE(at + 10), body.length, 'the body length');
    t.same(data.subarray(at + 14, at + 14 + body.length), body, 'the body bytes');
    at += 14 + body.length;
  }
  t.equal(data.readInt16BE(at), -1, 'end marker');
  t.equal(at + 2, data.length, 'nothing after it');
  t.ok([...copyData([Buffer.alloc(200_000)])].every((chunk) => chunk.length <= 65_536), 'never one copy of a whole large body');
});

t.test('large batches go by COPY and every body is stored byte for byte; small ones do not', needsPostgres, async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const large = fc.oneof(
    fc.integer({ min: COPY_MIN_BYTES, max: 300_000 }).map((size) => Buffer.alloc(size, 'x')),
    fc.uint8Array({ minLength: 1, maxLength: 2000 }).map((bytes) => Buffer.concat(Array.from({ length: 40 }, () => Buffer.from(bytes)))), // any bytes, NUL included
  );
  const small = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }).map((text) => Buffer.from(text, 'utf8')),
    fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(large, small), { minLength: 1, maxLength: 6 }), async (bodies) => {
      const { copy, transactions } = countingCopy(app.database.sql!);
      const stored = await storeDeliveries(app.db, bodies.map((body) => delivery(hook, body)), { copy });
      const ids = stored.map((result) => (result.ok ? result.value.id : ''));
      const total = bodies.reduce((sum, body) => sum + body.length, 0);
      if (transactions() !== (total >= COPY_MIN_BYTES ? 1 : 0)) return false;
      if (!stored.every((result) => result.ok && !result.value.duplicate)) return false;
      const rows = await storedBodies(t, app, ids);
      return bodies.every((body, i) => {
        const row = rows.get(ids[i]!);
        return row !== undefined && Buffer.compare(row.body, body) === 0 && row.size === body.length && row.headers['x-test'] === 'copy';
      });
    }),
    { numRuns: 25 },
  );
});

t.test('by COPY, a repeated delivery key answers duplicate with the original id, in the batch and across batches', needsPostgres, async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const { copy, transactions } = countingCopy(app.database.sql!);
  const [a, b] = [randomUUID(), randomUUID()];
  const big = (fill: string) => Buffer.alloc(COPY_MIN_BYTES, fill);
  const first = await storeDeliveries(app.db, [delivery(hook, big('a'), a), delivery(hook, big('b'), a), delivery(hook, big('c'), b)], { copy });
  t.ok(first.every((result) => result.ok));
  const [one, repeat, other] = first.map((result) => (result.ok ? result.value : null));
  t.same(repeat, { id: one!.id, duplicate: true }, 'the second of a key in one batch repeats the first');
  t.equal(other!.duplicate, false);
  const again = await storeDeliveries(app.db, [delivery(hook, big('d'), b), delivery(hook, big('e'), null)], { copy });
  t.same(again[0], { ok: true, value: { id: other!.id, duplicate: true } }, 'a key stored earlier answers its original id');
  const unkeyed = again[1]!;
  t.ok(unkeyed.ok && !unkeyed.value.duplicate, 'a delivery without a key is new');
  t.equal(transactions(), 2, 'both batches went by COPY');
  const rows = await storedBodies(t, app, [one!.id, other!.id, unkeyed.ok ? unkeyed.value.id : '']);
  t.equal(rows.get(one!.id)!.body.subarray(0, 1).toString(), 'a', 'the first body of the key is kept');
  t.equal(rows.get(other!.id)!.body.subarray(0, 1).toString(), 'c');
});

t.test('a 900 KB signed delivery is accepted through the route and stored exactly', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const body = JSON.stringify({ padding: 'é'.repeat(450_000) });
  const res = await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body, { 'x-github-delivery': randomUUID() }), payload: body });
  t.equal(res.statusCode, 202);
  const rows = await storedBodies(t, app, [res.json().delivery_id]);
  t.equal(rows.get(res.json().delivery_id)!.body.toString('utf8'), body);
});

t.test('a database that stops answering during a COPY batch: it fails in time with a 503 error, and the pool recovers', needsPostgres, async (t) => {
  const target = new URL(TEST_DATABASE_URL!);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const database = await openDatabase({ databaseUrl: proxiedUrl(TEST_DATABASE_URL!, proxy), poolMax: 2, connectTimeoutMs: 5000, dataDir: 'memory://' });
  t.teardown(() => database.close());
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const copy = { sql: database.sql!, timeoutMs: 500 };
  const body = Buffer.alloc(COPY_MIN_BYTES * 2, 'z');
  t.ok((await storeDeliveries(database.db, [delivery(hook, body)], { copy }))[0]!.ok, 'stored while the database answers');

  proxy.setDelay(60_000);
  const started = Date.now();
  const stalled = (await storeDeliveries(database.db, [delivery(hook, body)], { copy }))[0]!;
  const waited = Date.now() - started;
  t.notOk(stalled.ok);
  t.equal(!stalled.ok && (stalled.error as { code?: string }).code, 'DATABASE_WAIT_TIMEOUT', 'a 503 error (database unavailable), not a hang');
  t.ok(waited < 10_000, `settled after ${waited} ms, long before the database answered`);

  await proxy.cut();
  proxy.setDelay(0);
  await proxy.restore();
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) {
    ok = (await storeDeliveries(database.db, [delivery(hook, body)], { copy }))[0]!.ok;
    if (!ok) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.ok(ok, 'stores by COPY again once the database is back');
});

t.test('a role that may not create temporary tables: bodies go as parameters, stored all the same, and it is said once', needsPostgres, async (t) => {
  const env = await isolatedDatabaseEnv(t);
  const owner = await build(t, { database: 'own', env });
  const org = await createOrg(owner);
  const hook = await createWebhookWithRow(owner, org.adminKey);
  const role = `switchboard_notemp_${randomUUID().slice(0, 8)}`;
  const name = new URL(env.DATABASE_URL!).pathname.slice(1);
  await owner.database.sql!.unsafe(`create role ${role} login`);
  t.teardown(async () => {
    const admin = (await import('postgres')).default(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop owned by ${role} cascade`).catch(() => {});
    await admin.unsafe(`drop role if exists ${role}`).catch(() => {});
    await admin.end();
  });
  await owner.database.sql!.unsafe(`revoke temporary on database ${name} from public`);
  await owner.database.sql!.unsafe(`grant select, insert on webhook_deliveries to ${role}`);
  await owner.database.sql!.unsafe(`grant select on webhooks to ${role}`);
  const url = new URL(env.DATABASE_URL!);
  url.username = role;
  const limited = await openDatabase({ databaseUrl: url.toString(), poolMax: 2, connectTimeoutMs: 5000, dataDir: 'memory://' });
  t.teardown(() => limited.close());

  const refusals: unknown[] = [];
  const copy: CopyTarget = { sql: limited.sql!, timeoutMs: 10_000, onRefused: (error) => refusals.push(error) };
  const bodies = [Buffer.alloc(COPY_MIN_BYTES, 'p'), Buffer.alloc(COPY_MIN_BYTES + 1, 'q')];
  const ids: string[] = [];
  for (const body of bodies) {
    const [stored] = await storeDeliveries(limited.db, [delivery(hook, body)], { copy });
    t.ok(stored?.ok, 'stored');
    if (stored?.ok) ids.push(stored.value.id);
  }
  t.equal(refusals.length, 1, 'the refusal is reported once');
  t.match(String(refusals[0]), /permission denied/);
  const rows = await storedBodies(t, owner, ids);
  t.ok(bodies.every((body, i) => Buffer.compare(rows.get(ids[i]!)!.body, body) === 0), 'byte for byte');
});
