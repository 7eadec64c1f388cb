import { sql } from 'drizzle-orm';
import t from 'tap';
import { rowsOf } from '../../src/db/client.js';
import { listAuditEvents } from '../../src/db/audit-events.js';
import { asAdmin, bearer, build, createKey, createOrg } from '../helper.js';

type Event = { action: string; actor_type: string; outcome: string; count: number; details: Record<string, unknown>; target_id: string; occurred_at: string };

async function events(app: Awaited<ReturnType<typeof build>>, key: string, query = ''): Promise<Event[]> {
  const res = await app.inject({ method: 'GET', url: `/api/v1/audit-events${query}`, headers: bearer(key) });
  if (res.statusCode !== 200) throw new Error(res.body);
  return res.json().data;
}

t.test('records organization, key creation and revocation with actor, IP and request id', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const key = await createKey(app, org.adminKey, 'read_only');
  const revoke = await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${key.id}`, headers: bearer(org.adminKey), remoteAddress: '192.0.2.44' });
  const log = await events(app, org.adminKey);
  t.same(log.map((event) => event.action), ['api_key.revoked', 'api_key.created', 'api_key.created']);
  t.match(log[0], { actor_type: 'api_key', actor_id: org.adminKeyId, client_ip: '192.0.2.44', target_id: key.id, outcome: 'success', request_id: revoke.headers['x-request-id'] });
  t.match(log[2], { actor_type: 'platform_admin' });
  const platform = await listAuditEvents(app.db, null, { action: 'organization.created' }, { limit: 100 });
  t.ok(platform.data.some((event) => event.targetId === org.id), 'organization.created is in the platform log');
});

t.test('filters by action, actor type and time range, with cursor pagination', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  for (let i = 0; i < 3; i++) await createKey(app, org.adminKey, 'read_only');
  t.equal((await events(app, org.adminKey, '?action=api_key.created')).length, 4);
  t.equal((await events(app, org.adminKey, '?actor_type=platform_admin')).length, 1);
  t.equal((await events(app, org.adminKey, `?actor_type=api_key&actor_id=${org.adminKeyId}`)).length, 3, 'what one key did');
  t.equal((await events(app, org.adminKey, '?actor_id=no-such-actor')).length, 0);
  t.equal((await events(app, org.adminKey, '?action=api_key.revoked')).length, 0);
  const future = new Date(Date.now() + 60_000).toISOString();
  t.equal((await events(app, org.adminKey, `?since=${encodeURIComponent(future)}`)).length, 0);
  t.equal((await events(app, org.adminKey, `?until=${encodeURIComponent(future)}`)).length, 4);
  const first = await app.inject({ method: 'GET', url: '/api/v1/audit-events?limit=3', headers: bearer(org.adminKey) });
  const page = first.json();
  t.equal(page.data.length, 3);
  t.type(page.next_cursor, 'string');
  const second = await app.inject({ method: 'GET', url: `/api/v1/audit-events?limit=3&cursor=${page.next_cursor}`, headers: bearer(org.adminKey) });
  t.equal(second.json().data.length, 1);
  t.equal(second.json().next_cursor, null);
});

t.test('failed authentications are aggregated into one row per source, in the key owner\'s log', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const wrong = `${org.adminKey.slice(0, 21)}${'Z'.repeat(43)}`;
  for (let i = 0; i < 25; i++) {
    await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(wrong), remoteAddress: '198.51.100.20' });
  }
  await app.auditFailures.flush();
  const failures = await events(app, org.adminKey, '?action=auth.failed');
  t.equal(failures.length, 1, 'one row, not 25');
  t.match(failures[0], { outcome: 'failure', count: 25, actor_type: 'anonymous', client_ip: '198.51.100.20', details: { reason: 'invalid_secret', count: 25 } });
  t.equal((failures[0] as unknown as { actor_id: string }).actor_id, org.adminKey.slice(4, 20), 'the public key id, never the secret');
});

t.test('an organization deleted before the flush takes its failures with it; the others are still written', async (t) => {
  const app = await build(t);
  const [gone, kept] = [await createOrg(app), await createOrg(app)];
  const marker = `198.51.100.${Math.floor(Math.random() * 200) + 1}`;
  for (const org of [gone, kept]) {
    await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(`${org.adminKey.slice(0, 21)}${'Z'.repeat(43)}`), remoteAddress: marker });
  }
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer('garbage'), remoteAddress: marker });
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/organizations/${gone.id}`, headers: asAdmin })).statusCode, 204);
  await app.auditFailures.flush();
  t.match(await events(app, kept.adminKey, '?action=auth.failed'), [{ client_ip: marker, details: { reason: 'invalid_secret' } }], 'the surviving organization\'s failure is written');
  const platform = await listAuditEvents(app.db, null, { action: 'auth.failed' }, { limit: 100 });
  t.same(platform.data.filter((event) => event.clientIp === marker).map((event) => event.details.reason), ['malformed_key'], 'and the platform\'s');
});

t.test('failures that name no organization go to the platform log', async (t) => {
  const app = await build(t);
  const marker = `198.51.100.${Math.floor(Math.random() * 200) + 1}`;
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer('garbage'), remoteAddress: marker });
  await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer('wrong'), remoteAddress: marker });
  await app.auditFailures.flush();
  const platform = await listAuditEvents(app.db, null, { action: 'auth.failed' }, { limit: 100 });
  const mine = platform.data.filter((event) => event.clientIp === marker);
  t.same(mine.map((event) => event.details.reason).sort(), ['invalid_admin_token', 'malformed_key']);
});

t.test('no key material or admin token is ever stored in audit_events', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const key = await createKey(app, org.adminKey, 'admin');
  await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${key.id}`, headers: bearer(org.adminKey) });
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) });
  await app.auditFailures.flush();
  for (const secret of [org.adminKey.slice(21), key.key.slice(21), asAdmin.authorization.slice(7)]) {
    const rows = rowsOf(await app.db.execute(sql`select id from audit_events where row_to_json(audit_events)::text like ${`%${secret}%`}`));
    t.equal(rows.length, 0);
  }
});
