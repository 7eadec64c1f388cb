// GET /api/v1/status: the platform document. Each test has a database of its own, so the
// platform-wide counts are exact.
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { generateKey, keyId, parseKey } from '../../src/crypto/keyring.js';
import { agents, webhookDeliveries } from '../../src/db/schema.js';
import { asAdmin, asAgent, bearer, build, createAgent, createOrg, createWebhook, randomIp, TEST_DATABASE_URL, TEST_REDIS_URL } from '../helper.js';
import { codes, deliver, freshDatabase, lease, nack } from '../support/status.js';
import { proxiedUrl, startTcpProxy } from '../support/tcp-proxy.js';

const status = (app: Awaited<ReturnType<typeof build>>, headers: Record<string, string> = asAdmin) =>
  app.inject({ method: 'GET', url: '/api/v1/status', headers });

t.test('a healthy platform answers ok with every section filled and no warning', async (t) => {
  const database = await freshDatabase(t);
  const app = await build(t, { database });
  const res = await status(app);
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.same(body.health, { ok: true, warnings: [] });
  t.equal(body.version, JSON.parse(readFileSync('package.json', 'utf8')).version);
  t.type(body.uptime_s, 'number');
  t.ok(Date.parse(body.generated_at) > 0);
  t.equal(body.database.reachable, true);
  t.equal(body.database.kind, TEST_DATABASE_URL ? 'postgres' : 'embedded');
  t.type(body.database.latency_ms, 'number');
  t.equal(body.database.migrations.pending, 0);
  t.ok(body.database.migrations.applied >= 7);
  t.equal(body.keyring.current_key_id, app.keyring.currentKeyId);
  t.same(body.keyring.old_key_ids_in_use, []);
  t.equal(body.keyring.canary_ok, true);
  t.same(body.redis, { configured: false, reachable: null });
  t.same(body.google_oauth, { configured: false, connections: { connected: 0, expired: 0, error: 0 } });
  t.same(body.deliveries, { pending: 0, leased: 0, dead: 0, oldest_pending_age_s: null, count_cap: 10_000 });
  t.same(body.agents, { online: 0, offline: 0, never_seen: 0, disabled: 0 });
  t.equal(body.last_hour.window_s, 3600);
  t.equal(body.last_hour.auth_failures, 0);
  t.equal(body.last_hour.rate_limit_rejections, 0);
  t.same(body.audit_chain, { seq: 0, hash: '', event_id: null, occurred_at: null }, 'an empty platform audit chain');
  t.notMatch(res.body, /sbk_|v1\.[0-9a-f]{8}\./, 'no credential or ciphertext in the document');

  await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name: 'chain head' } });
  const chain = (await status(app)).json().audit_chain;
  t.match(chain, { seq: 1, hash: /^[0-9a-f]{64}$/, event_id: String }, 'organization.created is the first platform event');
});

t.test('answers 401 without the platform admin token and for an organization key', async (t) => {
  const app = await build(t);
  const none = await status(app, {});
  t.equal(none.statusCode, 401);
  t.equal(none.json().code, 'unauthorized');
  t.match(String(none.headers['content-type']), 'application/problem+json');
  const org = await createOrg(app);
  t.equal((await status(app, bearer(org.adminKey))).statusCode, 401);
  t.equal((await status(app, bearer('x'.repeat(40)))).statusCode, 401);
});

t.test('delivery and agent signals move with the backlog and the agents', async (t) => {
  const database = await freshDatabase(t);
  const app = await build(t, { database, env: { WEBHOOK_MAX_ATTEMPTS: '1' } });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  await createAgent(app, org.adminKey); // never seen
  const hook = await createWebhook(app, org.adminKey, { agent_id: agent.id });
  for (let i = 0; i < 4; i++) await deliver(app, hook);

  let body = (await status(app)).json();
  t.equal(body.deliveries.pending, 4);
  t.ok(body.deliveries.oldest_pending_age_s <= 5, 'just received');
  t.same(body.agents, { online: 0, offline: 0, never_seen: 2, disabled: 0 });

  // One leased and acked-as-failed (one attempt allowed → dead), one still leased.
  const [first] = await lease(app, agent.token);
  t.equal((await nack(app, agent.token, first!)).status, 'dead');
  await lease(app, agent.token);
  // The remaining pending delivery has waited ten minutes.
  await app.db.update(webhookDeliveries).set({ availableAt: sql`now() - interval '10 minutes'` }).where(sql`${webhookDeliveries.status} = 'pending'`);

  body = (await status(app)).json();
  t.equal(body.deliveries.pending, 2);
  t.equal(body.deliveries.leased, 1);
  t.equal(body.deliveries.dead, 1);
  t.ok(body.deliveries.oldest_pending_age_s >= 600, 'oldest due delivery is ten minutes old');
  t.equal(body.agents.online, 1, 'the agent that leased is online');
  t.equal(body.agents.never_seen, 1);
  t.same(codes(body), ['dead_deliveries', 'pending_deliveries_stale']);
  t.equal(body.health.ok, false);

  // The agent goes quiet for longer than AGENT_OFFLINE_AFTER_S.
  await app.db.update(agents).set({ lastSeenAt: sql`now() - interval '1 hour'` }).where(sql`${agents.id} = ${agent.id}`);
  body = (await status(app)).json();
  t.same(body.agents, { online: 0, offline: 1, never_seen: 1, disabled: 0 });
});

t.test('authentication failures and rate-limit rejections of the last hour count once flushed, with a spike warning', async (t) => {
  const database = await freshDatabase(t);
  const app = await build(t, { database, env: { RATE_LIMIT_WEBHOOK_MAX: '1' } });
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  const ip = randomIp();
  for (let i = 0; i < 100; i++) await status(app, { authorization: 'Bearer wrong-token' });
  const bad = await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent('sba_0123456789abcdef_nope'), remoteAddress: ip });
  t.equal(bad.statusCode, 401);
  await deliver(app, hook, ip);
  const limited = await app.inject({ method: 'POST', url: hook.url, payload: '{}', headers: { 'content-type': 'application/json' }, remoteAddress: ip });
  t.equal(limited.statusCode, 429);

  let body = (await status(app)).json();
  t.equal(body.last_hour.auth_failures, 0, 'not counted before the aggregator flushes');
  await app.auditFailures.flush();
  body = (await status(app)).json();
  t.equal(body.last_hour.by_action['auth.failed'], 100);
  t.equal(body.last_hour.by_action['agent.auth_failed'], 1);
  t.equal(body.last_hour.auth_failures, 101);
  t.equal(body.last_hour.rate_limit_rejections, 1);
  t.same(codes(body), ['auth_failure_spike']);

  // Events older than the window no longer count.
  await app.db.execute(sql`update audit_events set occurred_at = now() - interval '2 hours' where action = 'auth.failed'`);
  body = (await status(app)).json();
  t.equal(body.last_hour.by_action['auth.failed'], 0);
  t.equal(body.health.ok, true);
});

t.test('the keyring section names old keys still in use and a key that cannot decrypt', async (t) => {
  const database = await freshDatabase(t);
  const oldKey = generateKey();
  const newKey = generateKey();
  const first = await build(t, { database, env: { TOKEN_ENCRYPTION_KEY: oldKey } });
  const org = await createOrg(first);
  await createWebhook(first, org.adminKey);
  await first.close();

  const rotated = await build(t, { database, env: { TOKEN_ENCRYPTION_KEY: newKey, TOKEN_ENCRYPTION_OLD_KEYS: oldKey } });
  let body = (await status(rotated)).json();
  t.same(body.keyring.old_key_ids_in_use, [keyId(parseKey(oldKey))]);
  t.equal(body.keyring.ciphertexts_by_key[keyId(parseKey(oldKey))], 1);
  t.equal(body.keyring.canary_ok, true);
  t.same(codes(body), ['old_keys_in_use']);
  await rotated.close();

  const lost = await build(t, { database, env: { TOKEN_ENCRYPTION_KEY: newKey } });
  body = (await status(lost)).json();
  t.equal(body.keyring.canary_ok, false);
  t.same(body.keyring.unknown_key_ids, [keyId(parseKey(oldKey))]);
  t.same(codes(body), ['keyring_canary_failed', 'old_keys_in_use']);
});

t.test('pending migrations are a warning and the sections that need the schema stay empty', async (t) => {
  const database = await freshDatabase(t, { migrate: false });
  const app = await build(t, { database, env: { MIGRATE_ON_START: 'false' } });
  const body = (await status(app)).json();
  t.equal(body.database.reachable, true);
  t.equal(body.database.migrations.applied, 0);
  t.ok(body.database.migrations.pending >= 7);
  t.equal(body.deliveries, null);
  t.equal(body.keyring, null);
  t.same(codes(body), ['migrations_pending']);
});

t.test('Redis: configured but unreachable is a warning', async (t) => {
  const app = await build(t, { env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  const body = (await status(app)).json();
  t.same(body.redis, { configured: true, reachable: false });
  t.ok(codes(body).includes('redis_unreachable'));
});

t.test('Redis: configured and reachable', { skip: TEST_REDIS_URL ? false : 'needs TEST_REDIS_URL' }, async (t) => {
  const app = await build(t, { env: { REDIS_URL: TEST_REDIS_URL } });
  const body = (await status(app)).json();
  t.same(body.redis, { configured: true, reachable: true });
  t.notOk(codes(body).includes('redis_unreachable'));
});

t.test('with the database gone the document still answers, degraded, without internals', async (t) => {
  const app = await build(t, { database: 'own', env: { DATA_DIR: 'memory://' } });
  await app.database.close();
  const res = await status(app);
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.equal(body.database.reachable, false);
  t.equal(body.database.migrations, null);
  t.equal(body.deliveries, null);
  t.same(codes(body), ['database_unreachable']);
  t.notMatch(res.body, /postgres:\/\/|Error:|at .*\.js/);
});

t.test('a database slower than READINESS_TIMEOUT_MS gives a degraded document in bounded time', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a Postgres server behind a slow proxy)' }, async (t) => {
  const target = new URL(TEST_DATABASE_URL!);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const app = await build(t, { database: 'own', env: { DATABASE_URL: proxiedUrl(TEST_DATABASE_URL!, proxy), READINESS_TIMEOUT_MS: '300' } });
  proxy.setDelay(1000);
  const started = Date.now();
  const res = await status(app);
  t.ok(Date.now() - started < 1500, `answered in ${Date.now() - started} ms`);
  t.equal(res.statusCode, 200);
  t.equal(res.json().database.reachable, false);
  t.same(codes(res.json()), ['database_unreachable']);
});
