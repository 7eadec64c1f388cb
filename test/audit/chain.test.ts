// The audit log's hash chains: appends through real API actions, under concurrency and from two
// instances, and verify catching rows edited, deleted, reordered or inserted directly in SQL.
import { eq, sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { auditEventHash, GENESIS_HASH } from '../../src/crypto/audit-chain.js';
import { auditChainHeads, verifyAuditChain, verifyAuditChains } from '../../src/db/audit-chain.js';
import { rowsOf } from '../../src/db/client.js';
import { uuidv7 } from '../../src/db/ids.js';
import { auditEvents } from '../../src/db/schema.js';
import { asAdmin, bearer, build, createAgent, createKey, createOrg, createWebhook, TEST_DATABASE_URL, type TestOrg } from '../helper.js';

interface ChainRow {
  id: string;
  seq: number;
  prev_hash: string;
  hash: string;
  action: string;
}

/** The organization's chain as the database holds it, in sequence order. */
async function chainRows(app: FastifyInstance, organizationId: string): Promise<ChainRow[]> {
  const rows = rowsOf<ChainRow>(
    await app.db.execute(sql`select id, seq, prev_hash, hash, action from audit_events where organization_id = ${organizationId} order by seq`),
  );
  return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

/** An organization with a few audited actions: five events in its chain. */
async function busyOrg(app: FastifyInstance): Promise<TestOrg> {
  const org = await createOrg(app);
  const key = await createKey(app, org.adminKey, 'read_only');
  await createAgent(app, org.adminKey);
  await createWebhook(app, org.adminKey);
  await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${key.id}`, headers: bearer(org.adminKey) });
  return org;
}

async function verifyOrg(app: FastifyInstance, organizationId: string) {
  const [report] = await verifyAuditChains(app.db, { organizationId });
  return report!;
}

t.test('every audited action is appended to its organization chain: seq 1, 2, … each linked to the previous hash', async (t) => {
  const app = await build(t);
  const org = await busyOrg(app);
  const res = await app.inject({ method: 'GET', url: '/api/v1/audit-events', headers: bearer(org.adminKey) });
  const events = (res.json().data as { seq: number; prev_hash: string; hash: string; action: string }[]).reverse();
  t.same(
    events.map((event) => [event.seq, event.action]),
    [
      [1, 'api_key.created'],
      [2, 'api_key.created'],
      [3, 'agent.created'],
      [4, 'webhook.created'],
      [5, 'api_key.revoked'],
    ],
    'the API shows each event with its place in the chain',
  );
  t.equal(events[0]!.prev_hash, GENESIS_HASH);
  for (let i = 1; i < events.length; i++) t.equal(events[i]!.prev_hash, events[i - 1]!.hash);
  for (const event of events) t.match(event.hash, /^[0-9a-f]{64}$/);

  const report = await verifyOrg(app, org.id);
  t.match(report, { chain: org.id, events: 5, ok: true, head: { seq: 5, hash: events[4]!.hash, event_id: String, occurred_at: Date } });
  t.notOk('first_break' in report);
  const heads = await auditChainHeads(app.db);
  t.match(
    heads.find((head) => head.chain === org.id),
    { organization_id: org.id, seq: 5, hash: events[4]!.hash, event_id: report.head!.event_id },
    'the heads table records the same head',
  );
  t.equal(heads[0]!.chain, 'platform', 'the platform chain comes first');
  t.ok((await verifyAuditChain(app.db, 'platform')).ok, 'organization.created went to the platform chain, which verifies');
});

t.test('the stored hash covers every field the log keeps', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const [row] = await app.db.select().from(auditEvents).where(sql`${auditEvents.organizationId} = ${org.id} and ${auditEvents.seq} = 1`);
  const fields = { ...row!, chain: org.id, seq: 1, prevHash: GENESIS_HASH };
  t.equal(auditEventHash(fields), row!.hash, 'an independent recomputation matches');
  t.not(auditEventHash({ ...fields, count: 2 }), row!.hash, 'count is covered');
  t.not(auditEventHash({ ...fields, occurredAt: new Date(fields.occurredAt.getTime() + 1) }), row!.hash, 'the timestamp is covered');
  t.not(auditEventHash({ ...fields, details: { ...fields.details, extra: true } }), row!.hash, 'details are covered');
  t.equal(auditEventHash({ ...fields, details: Object.fromEntries(Object.entries(fields.details).reverse()) }), row!.hash, 'details key order does not matter');
});

t.test('aggregated authentication failures are chained with their count, in the organization and platform chains', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const wrong = `${org.adminKey.slice(0, 21)}${'Z'.repeat(43)}`;
  for (let i = 0; i < 7; i++) {
    await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(wrong), remoteAddress: '198.51.100.31' });
  }
  await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer('not-the-admin-token'), remoteAddress: '198.51.100.31' });
  await app.auditFailures.flush();
  const rows = await chainRows(app, org.id);
  t.same(rows.map((row) => [row.seq, row.action]), [[1, 'api_key.created'], [2, 'auth.failed']]);
  t.ok((await verifyOrg(app, org.id)).ok);
  t.ok((await verifyAuditChain(app.db, 'platform')).ok);
});

t.test('many parallel audited requests on one organization leave a contiguous, valid chain', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      app.inject({
        method: 'POST',
        url: i % 2 === 0 ? '/api/v1/api-keys' : '/api/v1/agents',
        headers: bearer(org.adminKey),
        payload: i % 2 === 0 ? { name: `key-${i}`, role: 'read_only' } : { name: `agent-${i}` },
      }),
    ),
  );
  t.same(new Set(results.map((res) => res.statusCode)), new Set([201]));
  const rows = await chainRows(app, org.id);
  t.same(rows.map((row) => row.seq), Array.from({ length: 31 }, (_, i) => i + 1), 'seq 1..31, no gap, no duplicate');
  t.match(await verifyOrg(app, org.id), { ok: true, events: 31, head: { seq: 31 } });
});

t.test('two instances on the same Postgres append to the same chains concurrently without forking them', { skip: !TEST_DATABASE_URL && 'needs TEST_DATABASE_URL: two instances cannot share an embedded database' }, async (t) => {
  const one = await build(t, { database: 'own' });
  const two = await build(t, { database: 'own' });
  const org = await createOrg(one);
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      (i % 2 === 0 ? one : two).inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(org.adminKey), payload: { name: `agent-${i}` } }),
    ),
  );
  // Both instances also append to the platform chain at the same time.
  const orgs = await Promise.all(
    Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? one : two).inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name: `parallel ${i}` } })),
  );
  t.same(new Set([...results, ...orgs].map((res) => res.statusCode)), new Set([201]));
  const rows = await chainRows(one, org.id);
  t.same(rows.map((row) => row.seq), Array.from({ length: 41 }, (_, i) => i + 1));
  t.match(await verifyOrg(two, org.id), { ok: true, events: 41 });
  t.ok((await verifyAuditChain(one.db, 'platform')).ok, 'the platform chain verifies');
  for (const res of orgs) t.ok((await verifyOrg(one, res.json().organization.id)).ok);
});

t.test('verify names the first broken event of a chain tampered with in SQL', async (t) => {
  const app = await build(t);
  const bystander = await busyOrg(app);

  t.test('an edited row: hash mismatch at that event', async (t) => {
    const org = await busyOrg(app);
    const rows = await chainRows(app, org.id);
    await app.db.execute(sql`update audit_events set details = details || '{"name":"innocent"}'::jsonb where id = ${rows[2]!.id}`);
    t.match(await verifyOrg(app, org.id), { ok: false, events: 5, head: { seq: 2 }, first_break: { event_id: rows[2]!.id, seq: 3, reason: 'hash_mismatch' } });
  });

  t.test('an edited row whose hash was recomputed: prev_hash mismatch at the next event', async (t) => {
    const org = await busyOrg(app);
    const rows = await chainRows(app, org.id);
    await app.db.execute(sql`update audit_events set client_ip = '203.0.113.9', hash = ${'f'.repeat(64)} where id = ${rows[1]!.id}`);
    const report = await verifyOrg(app, org.id);
    t.match(report.first_break, { event_id: rows[1]!.id, reason: 'hash_mismatch' }, 'a hash that is not the recomputation is caught at the row itself');
    const [row] = await app.db.select().from(auditEvents).where(eq(auditEvents.id, rows[1]!.id));
    const forged = auditEventHash({ ...row!, chain: org.id, seq: 2, prevHash: rows[0]!.hash });
    await app.db.execute(sql`update audit_events set hash = ${forged} where id = ${rows[1]!.id}`);
    t.match(await verifyOrg(app, org.id), { ok: false, head: { seq: 2 }, first_break: { event_id: rows[2]!.id, seq: 3, reason: 'prev_hash_mismatch' } });
  });

  t.test('a deleted row: sequence gap at the event after it', async (t) => {
    const org = await busyOrg(app);
    const rows = await chainRows(app, org.id);
    await app.db.execute(sql`delete from audit_events where id = ${rows[1]!.id}`);
    t.match(await verifyOrg(app, org.id), { ok: false, events: 4, first_break: { event_id: rows[2]!.id, seq: 3, reason: 'sequence_gap' } });
  });

  t.test('a deleted latest row: the chain ends before its recorded head', async (t) => {
    const org = await busyOrg(app);
    const rows = await chainRows(app, org.id);
    await app.db.execute(sql`delete from audit_events where id = ${rows[4]!.id}`);
    t.match(await verifyOrg(app, org.id), { ok: false, head: { seq: 4 }, first_break: { event_id: rows[4]!.id, seq: 5, reason: 'head_mismatch' } });
  });

  t.test('two rows with their seqs swapped: the first of them in chain order', async (t) => {
    const org = await busyOrg(app);
    const rows = await chainRows(app, org.id);
    const [a, b] = [rows[1]!, rows[3]!];
    await app.db.execute(sql`update audit_events set seq = -1 where id = ${a.id}`);
    await app.db.execute(sql`update audit_events set seq = ${a.seq} where id = ${b.id}`);
    await app.db.execute(sql`update audit_events set seq = ${b.seq} where id = ${a.id}`);
    t.match(await verifyOrg(app, org.id), { ok: false, head: { seq: 1 }, first_break: { event_id: b.id, seq: 2, reason: 'prev_hash_mismatch' } });
  });

  t.test('two rows with their contents swapped: hash mismatch at the first of them', async (t) => {
    const org = await busyOrg(app);
    const rows = await chainRows(app, org.id);
    const [a, b] = [rows[2]!, rows[3]!];
    await app.db.execute(sql`
      update audit_events e set action = o.action, target_type = o.target_type, target_id = o.target_id, details = o.details, occurred_at = o.occurred_at
      from audit_events o where (e.id = ${a.id} and o.id = ${b.id}) or (e.id = ${b.id} and o.id = ${a.id})`);
    t.match(await verifyOrg(app, org.id), { ok: false, first_break: { event_id: a.id, seq: 3, reason: 'hash_mismatch' } });
  });

  t.test('a row inserted without a place in the chain: unchained', async (t) => {
    const org = await busyOrg(app);
    const id = uuidv7();
    await app.db.execute(sql`insert into audit_events (id, organization_id, actor_type, action, outcome) values (${id}, ${org.id}, 'system', 'api_key.created', 'success')`);
    t.match(await verifyOrg(app, org.id), { ok: false, events: 6, head: { seq: 5 }, first_break: { event_id: id, seq: null, reason: 'unchained' } });
  });

  t.test('a row inserted with a seq below 1: sequence gap', async (t) => {
    const org = await busyOrg(app);
    const id = uuidv7();
    await app.db.execute(sql`insert into audit_events (id, organization_id, actor_type, action, outcome, seq) values (${id}, ${org.id}, 'system', 'api_key.created', 'success', 0)`);
    t.match(await verifyOrg(app, org.id), { ok: false, first_break: { event_id: id, seq: 0, reason: 'sequence_gap' } });
  });

  t.test('a deleted head record: head mismatch', async (t) => {
    const org = await busyOrg(app);
    const rows = await chainRows(app, org.id);
    await app.db.execute(sql`delete from audit_chain_heads where chain = ${org.id}`);
    t.match(await verifyOrg(app, org.id), { ok: false, first_break: { event_id: rows[4]!.id, seq: 5, reason: 'head_mismatch' } });
    const refused = await app.inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(org.adminKey), payload: { name: 'after' } });
    t.equal(refused.statusCode, 500, 'an audited write is refused rather than starting a second chain at seq 1');
    t.same((await chainRows(app, org.id)).map((row) => row.id), rows.map((row) => row.id), 'and leaves nothing behind');
    // The repair in docs/operations/README.md.
    await app.db.execute(sql`
      insert into audit_chain_heads (chain, organization_id, seq, hash, event_id, occurred_at)
      select coalesce(organization_id::text, 'platform'), organization_id, seq, hash, id, occurred_at
      from audit_events where organization_id = ${org.id} order by seq desc limit 1`);
    t.match(await verifyOrg(app, org.id), { ok: true, events: 5 });
    await createAgent(app, org.adminKey);
    t.match(await verifyOrg(app, org.id), { ok: true, events: 6, head: { seq: 6 } });
  });

  t.test('other chains are unaffected and new events still append', async (t) => {
    t.match(await verifyOrg(app, bystander.id), { ok: true, events: 5 });
    await createKey(app, bystander.adminKey, 'admin');
    t.match(await verifyOrg(app, bystander.id), { ok: true, events: 6, head: { seq: 6 } });
  });
});

t.test('an organization without events has an empty, valid chain; deleting an organization removes its chain', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  await app.db.execute(sql`delete from audit_events where organization_id = ${org.id}`);
  await app.db.execute(sql`delete from audit_chain_heads where chain = ${org.id}`);
  t.same(await verifyOrg(app, org.id), { chain: org.id, events: 0, head: null, ok: true });
  await createKey(app, org.adminKey, 'read_only');
  t.match(await verifyOrg(app, org.id), { ok: true, events: 1, head: { seq: 1 } }, 'a new chain starts at 1');
  const res = await app.inject({ method: 'DELETE', url: `/api/v1/organizations/${org.id}`, headers: asAdmin });
  t.equal(res.statusCode, 204);
  t.notOk((await auditChainHeads(app.db)).some((head) => head.chain === org.id), 'its head went with it');
  t.ok((await verifyAuditChain(app.db, 'platform')).ok, 'organization.deleted is chained in the platform log');
});
