// Group commit and the lean ingest path: concurrent deliveries share one INSERT, yet every
// request gets its own answer, and nothing a second instance changes is missed.
import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import t from 'tap';
import { openDatabase, rowsOf } from '../../src/db/client.js';
import { ackDeliveries, deliveryWriter, leaseDeliveries, storeDeliveries } from '../../src/db/deliveries.js';
import { webhookDeliveries } from '../../src/db/schema.js';
import { asAgent, bearer, build, createAgent, createOrg, createWebhookWithRow, isolatedDatabaseEnv, TEST_DATABASE_URL, type WebhookWithRow } from '../helper.js';
import { newDelivery } from '../support/deliveries.js';
import { githubHeaders } from '../support/signing.js';

const delivery = (hook: WebhookWithRow, deliveryKey: string | null, text = '{}') => newDelivery(hook, text, { deliveryKey });

t.test('concurrent ingests of one delivery key store one row: one 202 new, the rest 200 duplicate with its id', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const body = JSON.stringify({ storm: true });
  const headers = await githubHeaders(hook.secret, body, { 'x-github-delivery': randomUUID() });
  const responses = await Promise.all(Array.from({ length: 12 }, () => app.inject({ method: 'POST', url: hook.url, headers, payload: body })));
  const fresh = responses.filter((res) => res.statusCode === 202);
  t.equal(fresh.length, 1, 'exactly one is new');
  t.equal(fresh[0]!.json().duplicate, false);
  const id = fresh[0]!.json().delivery_id;
  for (const res of responses.filter((r) => r !== fresh[0])) {
    t.equal(res.statusCode, 200);
    t.same(res.json(), { delivery_id: id, duplicate: true });
  }
  const rows = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id));
  t.equal(rows.length, 1, 'one row');
  t.equal(rows[0]!.body.toString('utf8'), body, 'byte-exact');
});

t.test('concurrent ingests with distinct keys all get their own committed row', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const sent = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const body = JSON.stringify({ i });
      const res = await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body, { 'x-github-delivery': randomUUID() }), payload: body });
      return { body, res };
    }),
  );
  for (const { body, res } of sent) {
    t.equal(res.statusCode, 202);
    const got = await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${res.json().delivery_id}`, headers: bearer(org.adminKey) });
    t.equal(got.json().body_text, body, 'each answer points at its own row');
  }
});

t.test('a secret rotation, disable or delete on another instance is seen at once', async (t) => {
  const a = await build(t);
  const b = await build(t, { database: a.database });
  const org = await createOrg(b);
  const hook = await createWebhookWithRow(b, org.adminKey);
  const body = '{"n":1}';
  t.equal((await a.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body })).statusCode, 202, 'A knows the secret');

  const rotated = await b.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 0 } });
  const fresh = rotated.json().secret as string;
  const old = await a.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body });
  t.equal(old.statusCode, 403, 'the old secret stops on A at once');
  t.equal(old.json().code, 'signature_invalid');
  t.equal((await a.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(fresh, body), payload: body })).statusCode, 202, 'the new one works on A');

  await b.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled: false } });
  t.equal((await a.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(fresh, body), payload: body })).statusCode, 410, 'disabled');
  await b.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey) });
  t.equal((await a.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(fresh, body), payload: body })).statusCode, 404, 'deleted');
});

t.test('a failing row in a batch fails alone; its neighbours are stored', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  // Postgres refuses NUL in text: the batch's INSERT fails as a whole.
  const unstorable = { ...delivery(hook, null), contentType: 'application/json\u0000' };
  const writer = deliveryWriter(app.db, { maxBatch: 10, maxBatchBytes: 1_048_576, maxInFlight: 1 });
  const settled = await Promise.allSettled([
    writer.call(delivery(hook, null, '{"a":1}')),
    writer.call(unstorable),
    writer.call(delivery(hook, 'k-1', '{"b":2}')),
  ]);
  t.same(writer.stats, { batches: 1, items: 3, largest: 3 }, 'the three went out as one batch');
  t.equal(settled[0]!.status, 'fulfilled');
  t.equal(settled[1]!.status, 'rejected', 'the bad row is refused');
  t.equal(settled[2]!.status, 'fulfilled');
  const rows = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id));
  t.same(rows.map((row) => row.body.toString()).sort(), ['{"a":1}', '{"b":2}']);
});

t.test(
  'every batch size runs the one prepared INSERT: one round trip, no planning per batch',
  { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (prepared statements are kept per Postgres connection; the embedded database has no round trips)' },
  async (t) => {
    const app = await build(t);
    const org = await createOrg(app);
    const hook = await createWebhookWithRow(app, org.adminKey);
    // One connection, so the statements it has prepared are the ones this test's batches prepared.
    const database = await openDatabase({ databaseUrl: TEST_DATABASE_URL, poolMax: 1, connectTimeoutMs: 5000, dataDir: 'memory://' });
    t.teardown(() => database.close());
    for (const size of [1, 3, 17]) {
      const bodies = Array.from({ length: size }, (_, i) => (i % 2 ? Buffer.from([0, 0xff, i]) : Buffer.from(`{"size":${size},"i":${i}}`)));
      const stored = await storeDeliveries(
        database.db,
        bodies.map((body) => ({ ...delivery(hook, null), body })),
      );
      t.ok(stored.every((result) => result.ok), `a batch of ${size} is stored`);
    }
    const prepared = rowsOf<{ statement: string }>(
      await database.db.execute(sql`select statement from pg_prepared_statements where statement like '%insert into webhook_deliveries%'`),
    );
    t.equal(prepared.length, 1, 'one prepared INSERT for batches of 1, 3 and 17');
    const rows = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id));
    t.equal(rows.length, 21);
    t.ok(rows.some((row) => row.body.equals(Buffer.from([0, 0xff, 1]))), 'binary bodies come back exact');
  },
);

t.test(
  'leases, lease expiry and acks run as prepared statements, one each however often they run',
  { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (prepared statements are kept per Postgres connection)' },
  async (t) => {
    // A database of its own: the plans below depend on its statistics.
    const env = await isolatedDatabaseEnv(t);
    const app = await build(t, { database: 'own', env });
    const org = await createOrg(app);
    const agent = await createAgent(app, org.adminKey);
    const hook = await createWebhookWithRow(app, org.adminKey, { agent_id: agent.id });
    const database = await openDatabase({ databaseUrl: env.DATABASE_URL, poolMax: 1, connectTimeoutMs: 5000, dataDir: 'memory://' });
    t.teardown(() => database.close());
    await storeDeliveries(database.db, Array.from({ length: 4 }, (_, i) => delivery(hook, `p-${i}`)));
    for (const limit of [1, 3]) {
      const leased = await leaseDeliveries(database.db, org.id, agent.id, { limit, leaseSeconds: 60, maxAttempts: 5 });
      t.equal(leased.length, limit, `a lease of ${limit}`);
      const acked = await ackDeliveries(database.db, leased.map((row) => ({ organizationId: org.id, agentId: agent.id, id: row.id })));
      t.same(acked, leased.map(() => ({ ok: true, value: 'done' })));
    }
    const prepared = rowsOf<{ name: string; statement: string }>(
      await database.db.execute(sql`select name, statement from pg_prepared_statements where statement like '%update webhook_deliveries%'`),
    );
    const matching = (pattern: RegExp) => prepared.filter((row) => pattern.test(row.statement));
    t.equal(matching(/set status = 'leased'/).length, 1, 'the lease');
    t.equal(matching(/'dead' else 'pending'/).length, 1, 'the expiry of lapsed leases before it');
    t.equal(matching(/set status = 'done'/).length, 1, 'the ack');

    // The plans a large queue gets read leased rows through the expiry index or by primary key,
    // never through the status indexes, whose entries of acked deliveries pile up until vacuum
    // (IS_LEASED in db/deliveries.ts). 20,000 acked deliveries make this organization's queue large.
    const client = database.sql!;
    await client.unsafe(
      `insert into webhook_deliveries (id, organization_id, webhook_id, body, size, body_sha256, headers, status, completed_at)
       select gen_random_uuid(), $1, $2, '\\x7b7d', 2, repeat('0', 64), '{}', 'done', now() from generate_series(1, 20000)`,
      [org.id, hook.id],
    );
    await client.unsafe('analyze webhook_deliveries');
    await client.unsafe('set plan_cache_mode = force_generic_plan');
    const indexesOf = async (name: string, literals: string) => {
      const [row] = await client.unsafe(`explain (format json) execute "${name}"(${literals})`);
      return [...JSON.stringify(row).matchAll(/"Index Name":"([^"]+)"/g)].map((match) => match[1]);
    };
    const ack = JSON.stringify([{ id: randomUUID(), organization_id: org.id, agent_id: agent.id }]);
    t.same(await indexesOf(matching(/set status = 'done'/)[0]!.name, `'${ack}'`), ['webhook_deliveries_pkey'], 'an ack finds its rows by primary key');
    t.same(await indexesOf(matching(/'dead' else 'pending'/)[0]!.name, `5, '${org.id}'`), ['webhook_deliveries_lease_expiry_idx'], 'the expiry walks only lapsed leases');
  },
);

t.test('duplicates inside one batch and across batches answer the original id', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const first = await storeDeliveries(app.db, [
    delivery(hook, 'same'),
    delivery(hook, 'same'),
    delivery(hook, null),
    delivery(hook, null),
  ]);
  const values = first.map((result) => (result.ok ? result.value : null));
  t.equal(values[0]!.duplicate, false);
  t.same(values[1], { id: values[0]!.id, duplicate: true });
  t.equal(values[2]!.duplicate, false, 'deliveries without a key are never duplicates');
  t.not(values[2]!.id, values[3]!.id);
  const again = await storeDeliveries(app.db, [delivery(hook, 'same'), delivery(hook, 'other')]);
  t.same(again[0], { ok: true, value: { id: values[0]!.id, duplicate: true } }, 'a later batch finds the stored row');
  t.equal(again[1]!.ok && again[1]!.value.duplicate, false);
  const rows = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id));
  t.equal(rows.length, 4);
});

t.test('concurrent acks share a commit yet each gets its own answer: done, 409 lease_not_held or 404', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agents = [await createAgent(app, org.adminKey), await createAgent(app, org.adminKey)];
  const leased: string[][] = [];
  for (const agent of agents) {
    const hook = await createWebhookWithRow(app, org.adminKey, { agent_id: agent.id });
    for (let i = 0; i < 3; i++) {
      const body = JSON.stringify({ i });
      await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body });
    }
    const res = await app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(agent.token), payload: {} });
    leased.push(res.json().data.map((d: { id: string }) => d.id));
  }
  const ack = (token: string, id: string) => app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/ack`, headers: asAgent(token) });
  const a = agents[0]!;
  const b = agents[1]!;
  const responses = await Promise.all([
    ...leased[0]!.map((id) => ack(a.token, id)),
    ack(a.token, leased[0]![0]!), // the same delivery twice
    ...leased[1]!.slice(0, 2).map((id) => ack(b.token, id)),
    ack(a.token, leased[1]![2]!), // another agent's delivery
  ]);
  t.same(responses.slice(0, 3).map((r) => r.json()), leased[0]!.map((id) => ({ id, status: 'done' })));
  t.equal(responses[3]!.statusCode, 409, 'the second ack of one delivery');
  t.equal(responses[3]!.json().code, 'lease_not_held');
  t.same(responses.slice(4, 6).map((r) => r.json().status), ['done', 'done']);
  t.equal(responses[6]!.statusCode, 404, "another agent's delivery is not found");
  const stillLeased = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, leased[1]![2]!));
  t.equal(stillLeased[0]!.status, 'leased', 'and stays leased by its agent');
});

t.test('a failing ack batch is retried ack by ack, so only the bad one fails', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const hook = await createWebhookWithRow(app, org.adminKey, { agent_id: agent.id });
  const body = '{}';
  await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body });
  const leased = (await app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(agent.token), payload: {} })).json().data;
  const results = await ackDeliveries(app.db, [
    { organizationId: org.id, agentId: agent.id, id: leased[0].id },
    { organizationId: org.id, agentId: agent.id, id: 'not-a-uuid' }, // fails the whole statement
  ]);
  t.same(results[0], { ok: true, value: 'done' });
  t.equal(results[1]!.ok, false);
});

t.test('in one ack batch, only the lease holder is answered done, whoever comes first', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const other = await createOrg(app);
  const holder = await createAgent(app, org.adminKey);
  const colleague = await createAgent(app, org.adminKey);
  const stranger = await createAgent(app, other.adminKey);
  const hook = await createWebhookWithRow(app, org.adminKey, { agent_id: holder.id });
  const body = '{"held":true}';
  await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body });
  const [delivery] = (await app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(holder.token), payload: {} })).json().data;
  // The data function directly, so the batch order is exactly this: non-holders first.
  const results = await ackDeliveries(app.db, [
    { organizationId: other.id, agentId: stranger.id, id: delivery.id },
    { organizationId: org.id, agentId: colleague.id, id: delivery.id },
    { organizationId: org.id, agentId: holder.id, id: delivery.id },
  ]);
  t.same(results, [
    { ok: true, value: 'not_found' },
    { ok: true, value: 'not_found' },
    { ok: true, value: 'done' },
  ]);
});
