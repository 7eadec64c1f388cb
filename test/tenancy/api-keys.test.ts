import { createHash } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import t from 'tap';
import { rowsOf } from '../../src/db/client.js';
import { apiKeys } from '../../src/db/schema.js';
import { bearer, build, captureLogs, createKey, createOrg } from '../helper.js';

t.test('an admin key creates keys of both roles; each key is shown once', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const res = await app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: bearer(org.adminKey), payload: { name: 'ci', role: 'read_only' } });
  t.equal(res.statusCode, 201);
  const created = res.json().api_key;
  t.match(created, { name: 'ci', role: 'read_only', status: 'active', key: /^sbk_/, expires_at: null, revoked_at: null });
  const one = await app.inject({ method: 'GET', url: `/api/v1/api-keys/${created.id}`, headers: bearer(org.adminKey) });
  t.equal(one.statusCode, 200);
  t.notOk('key' in one.json().api_key);
  const list = await app.inject({ method: 'GET', url: '/api/v1/api-keys', headers: bearer(created.key) });
  t.equal(list.statusCode, 200);
  t.equal(list.json().data.length, 2);
  t.notMatch(list.body, created.key);
  t.notMatch(list.body, created.key.slice(21), 'not even the secret part');
  t.notMatch(list.body, /secret_hash|hash/);
});

t.test('the database holds the SHA-256 of the secret, not the key', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const publicId = org.adminKey.slice(4, 20);
  const secret = org.adminKey.slice(21);
  const [row] = await app.db.select().from(apiKeys).where(eq(apiKeys.publicId, publicId));
  t.equal(row?.secretHash, createHash('sha256').update(secret).digest('hex'));
  const leaked = rowsOf(await app.db.execute(sql`select id from api_keys where row_to_json(api_keys)::text like ${`%${secret}%`}`));
  t.equal(leaked.length, 0);
});

t.test('revocation takes effect on the very next request', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const key = await createKey(app, org.adminKey, 'read_only');
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) })).statusCode, 200);
  const revoke = await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${key.id}`, headers: bearer(org.adminKey) });
  t.equal(revoke.statusCode, 204);
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) })).statusCode, 401);
  const listed = await app.inject({ method: 'GET', url: `/api/v1/api-keys/${key.id}`, headers: bearer(org.adminKey) });
  t.match(listed.json().api_key, { status: 'revoked', revoked_at: String });
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${key.id}`, headers: bearer(org.adminKey) })).statusCode, 204, 'idempotent');
});

t.test('a key stops working when it expires', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const key = await createKey(app, org.adminKey, 'admin', { expires_at: new Date(Date.now() + 3_600_000).toISOString() });
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) })).statusCode, 200);
  await app.db.update(apiKeys).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiKeys.id, key.id));
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) })).statusCode, 401);
  const shown = await app.inject({ method: 'GET', url: `/api/v1/api-keys/${key.id}`, headers: bearer(org.adminKey) });
  t.equal(shown.json().api_key.status, 'expired');
});

t.test('missing, malformed, unknown, wrong-secret, expired and revoked keys all get the same 401', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const revoked = await createKey(app, org.adminKey, 'admin');
  await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${revoked.id}`, headers: bearer(org.adminKey) });
  const expired = await createKey(app, org.adminKey, 'admin');
  await app.db.update(apiKeys).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiKeys.id, expired.id));
  const wrongSecret = `${org.adminKey.slice(0, 21)}${'A'.repeat(43)}`;
  const unknown = `sbk_0123456789abcdef_${'B'.repeat(43)}`;
  const cases: Record<string, Record<string, string>> = {
    missing: {},
    malformed: bearer('not-a-key'),
    basic: { authorization: 'Basic YTpi' },
    unknown: bearer(unknown),
    wrongSecret: bearer(wrongSecret),
    expired: bearer(expired.key),
    revoked: bearer(revoked.key),
  };
  const shapes = new Set<string>();
  for (const [label, headers] of Object.entries(cases)) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/api-keys', headers });
    t.equal(res.statusCode, 401, label);
    t.equal(res.headers['www-authenticate'], 'Bearer realm="switchboard"', label);
    const { request_id: _ignored, ...rest } = res.json();
    shapes.add(JSON.stringify(rest));
  }
  t.equal(shapes.size, 1, 'one response shape for every failure');
});

t.test('last_used_at is written at most about once a minute', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const key = await createKey(app, org.adminKey, 'read_only');
  const lastUsed = async () => (await app.db.select().from(apiKeys).where(eq(apiKeys.id, key.id)))[0]?.lastUsedAt?.getTime();
  t.equal(await lastUsed(), undefined, 'never used yet');
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) });
  let first: number | undefined;
  for (let i = 0; i < 50 && first === undefined; i++) {
    first = await lastUsed();
    if (first === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.type(first, 'number', 'first use recorded');
  for (let i = 0; i < 5; i++) await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) });
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(await lastUsed(), first, 'later uses within the minute did not write');
});

t.test('key material never reaches the logs, even at trace level', async (t) => {
  const logs = captureLogs();
  const app = await build(t, { env: { LOG_LEVEL: 'trace' }, logDestination: logs.destination });
  const org = await createOrg(app);
  const key = await createKey(app, org.adminKey, 'admin');
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key.key) });
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(`${key.key.slice(0, 21)}${'C'.repeat(43)}`) });
  t.ok(logs.text().length > 0);
  for (const secret of [org.adminKey, key.key]) t.notMatch(logs.text(), secret.slice(21));
  t.match(logs.text(), 'API key authentication failed');
});

t.test('a read-only key reads but cannot write (403)', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const ro = await createKey(app, org.adminKey, 'read_only');
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/api-keys', headers: bearer(ro.key) })).statusCode, 200);
  const res = await app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: bearer(ro.key), payload: { name: 'x', role: 'admin' } });
  t.equal(res.statusCode, 403);
  t.equal(res.json().code, 'forbidden');
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${org.adminKeyId}`, headers: bearer(ro.key) })).statusCode, 403);
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/audit-events', headers: bearer(ro.key) })).statusCode, 403);
});

t.test("another tenant's key id answers 404, exactly like a missing id", async (t) => {
  const app = await build(t);
  const a = await createOrg(app);
  const b = await createOrg(app);
  const bKey = await createKey(app, b.adminKey, 'read_only');
  for (const method of ['GET', 'DELETE'] as const) {
    const theirs = await app.inject({ method, url: `/api/v1/api-keys/${bKey.id}`, headers: bearer(a.adminKey) });
    const missing = await app.inject({ method, url: '/api/v1/api-keys/01a204b0-0000-7000-8000-000000000000', headers: bearer(a.adminKey) });
    t.equal(theirs.statusCode, 404);
    t.equal(theirs.json().detail, missing.json().detail);
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(bKey.key) })).statusCode, 200, 'not revoked by the other tenant');
});
