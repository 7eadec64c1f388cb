// GET /api/v1/organization/status: one organization's own backlog, agents, Google connection and
// failures. Runs on the shared database: everything it counts is scoped to a new organization.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { recordAuditEvents } from '../../src/db/audit-events.js';
import { uuidv7 } from '../../src/db/ids.js';
import { recordRefresh, saveGoogleConnection, refreshTokenAad } from '../../src/db/oauth.js';
import { agents } from '../../src/db/schema.js';
import { asAdmin, asAgent, bearer, build, createAgent, createKey, createOrg, createWebhook, TEST_DATABASE_URL } from '../helper.js';
import { codes, deliver, freshDatabase, lease, nack } from '../support/status.js';

const orgStatus = (app: Awaited<ReturnType<typeof build>>, headers: Record<string, string>) =>
  app.inject({ method: 'GET', url: '/api/v1/organization/status', headers });

t.test('a new organization answers ok with zero counts, also to a read-only key', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const readOnly = await createKey(app, org.adminKey, 'read_only');
  for (const key of [org.adminKey, readOnly.key]) {
    const res = await orgStatus(app, bearer(key));
    t.equal(res.statusCode, 200);
    const body = res.json();
    t.same(body.health, { ok: true, warnings: [] });
    t.equal(body.organization_id, org.id);
    t.same(body.deliveries, { pending: 0, leased: 0, dead: 0, oldest_pending_age_s: null, count_cap: 10_000 });
    t.same(body.agents, { online: 0, offline: 0, never_seen: 0, disabled: 0 });
    t.equal(body.google_oauth.state, 'not_configured');
    t.equal(body.last_hour.auth_failures, 0);
  }
});

t.test('answers 401 without a key, with a bad key and with the platform admin token', async (t) => {
  const app = await build(t);
  const none = await orgStatus(app, {});
  t.equal(none.statusCode, 401);
  t.equal(none.json().code, 'unauthorized');
  t.equal((await orgStatus(app, asAdmin)).statusCode, 401);
  t.equal((await orgStatus(app, bearer('sbk_0123456789abcdef_nope'))).statusCode, 401);
});

t.test("counts only the caller's organization, and moves with its deliveries, agents and failures", async (t) => {
  const app = await build(t, { env: { WEBHOOK_MAX_ATTEMPTS: '1', RATE_LIMIT_AGENT_MAX: '3' } });
  const a = await createOrg(app);
  const b = await createOrg(app);
  const agent = await createAgent(app, a.adminKey);
  const idle = await createAgent(app, a.adminKey);
  const hook = await createWebhook(app, a.adminKey, { agent_id: agent.id });
  for (let i = 0; i < 3; i++) await deliver(app, hook);
  // Noise in the other organization must not show.
  const bAgent = await createAgent(app, b.adminKey);
  const bHook = await createWebhook(app, b.adminKey, { agent_id: bAgent.id });
  await deliver(app, bHook);

  const [first] = await lease(app, agent.token); // agent call 1
  await nack(app, agent.token, first!); // 2 → dead (one attempt allowed)
  await lease(app, agent.token); // 3 → leased
  const limited = await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token), payload: {} });
  t.equal(limited.statusCode, 429, 'the fourth agent call is over RATE_LIMIT_AGENT_MAX');
  // A wrong secret on a's real key id is an authentication failure of organization a.
  const wrong = a.adminKey.slice(0, -4) + (a.adminKey.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  t.equal((await orgStatus(app, bearer(wrong))).statusCode, 401);
  await app.db.update(agents).set({ lastSeenAt: sql`now() - interval '1 hour'` }).where(sql`${agents.id} = ${idle.id}`);
  await app.auditFailures.flush();

  const body = (await orgStatus(app, bearer(a.adminKey))).json();
  t.equal(body.deliveries.pending, 1);
  t.equal(body.deliveries.leased, 1);
  t.equal(body.deliveries.dead, 1);
  t.same(body.agents, { online: 1, offline: 1, never_seen: 0, disabled: 0 });
  t.equal(body.last_hour.by_action['auth.failed'], 1);
  t.equal(body.last_hour.rate_limit_rejections, 1);
  t.same(codes(body), ['agents_offline', 'dead_deliveries']);

  const other = (await orgStatus(app, bearer(b.adminKey))).json();
  t.equal(other.deliveries.pending, 1);
  t.equal(other.deliveries.dead, 0);
  t.same(other.agents, { online: 0, offline: 0, never_seen: 1, disabled: 0 });
  t.equal(other.last_hour.auth_failures, 0);
  t.equal(other.last_hour.rate_limit_rejections, 0);
  t.equal(other.health.ok, true);
});

t.test('a Google connection that needs reconnecting and failed refreshes are warnings', async (t) => {
  const app = await build(t, {
    env: { GOOGLE_OAUTH_CLIENT_ID: 'client', GOOGLE_OAUTH_CLIENT_SECRET: 'secret', GOOGLE_OAUTH_REDIRECT_URI: 'http://127.0.0.1:8080/api/v1/oauth/google/callback' },
  });
  const org = await createOrg(app);
  let body = (await orgStatus(app, bearer(org.adminKey))).json();
  t.equal(body.google_oauth.state, 'not_connected');
  t.equal(body.health.ok, true);

  const id = uuidv7();
  await saveGoogleConnection(app.db, org.id, id, {
    accountEmail: 'ops@example.com',
    refreshTokenCiphertext: app.keyring.encrypt('refresh', refreshTokenAad(org.id, id)),
    accessTokenCiphertext: null,
    accessTokenExpiresAt: null,
    scopes: [],
  });
  await recordRefresh(app.db, org.id, { ok: false, status: 'expired', error: 'refresh refused: invalid_grant' });
  await recordAuditEvents(app.db, [
    { organizationId: org.id, actorType: 'agent', actorId: null, clientIp: null, requestId: null, action: 'oauth.refresh_failed', outcome: 'failure', details: { reason: 'invalid_grant' } },
  ]);
  body = (await orgStatus(app, bearer(org.adminKey))).json();
  t.equal(body.google_oauth.state, 'expired');
  t.equal(body.last_hour.oauth_refresh_failures, 1);
  t.same(codes(body), ['oauth_reconnect_required', 'oauth_refresh_failures']);
  t.notMatch(JSON.stringify(body), /v1\.[0-9a-f]{8}\./, 'no ciphertext in the document');
});

t.test('a Google connection not read within READINESS_TIMEOUT_MS is null with a warning, not a hung request', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a second connection holds a lock)' }, async (t) => {
  const database = await freshDatabase(t);
  const app = await build(t, { database, env: { READINESS_TIMEOUT_MS: '300' } });
  const org = await createOrg(app);
  // Another session holds the table: reads of it wait for the lock, like on a stalled database.
  const holder = await database.sql!.reserve();
  await holder`begin`;
  await holder`lock table google_connections in access exclusive mode`;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await holder`rollback`;
    holder.release();
  };
  t.teardown(release);
  // Without a bound the request would wait for this release, and then find the connection.
  const releaseLater = setTimeout(() => void release(), 3000);
  t.teardown(() => clearTimeout(releaseLater));

  const started = Date.now();
  const res = await orgStatus(app, bearer(org.adminKey));
  const elapsed = Date.now() - started;
  t.equal(res.statusCode, 200);
  t.ok(elapsed < 2000, `answered in ${elapsed} ms`);
  const body = res.json();
  t.equal(body.google_oauth, null);
  t.same(body.agents, { online: 0, offline: 0, never_seen: 0, disabled: 0 }, 'the other sections are read');
  t.same(codes(body), ['status_incomplete']);
  t.match(body.health.warnings[0].message, /google_oauth/);
});

t.test("shows the head of the organization's audit chain, which advances with each audited change", async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const before = (await orgStatus(app, bearer(org.adminKey))).json().audit_chain;
  t.match(before, { seq: Number, hash: /^[0-9a-f]{64}$/, event_id: String, occurred_at: String });
  await createKey(app, org.adminKey, 'read_only');
  const after = (await orgStatus(app, bearer(org.adminKey))).json().audit_chain;
  t.equal(after.seq, before.seq + 1, 'one more event');
  t.not(after.hash, before.hash);
  const events = (await app.inject({ method: 'GET', url: '/api/v1/audit-events?limit=1', headers: bearer(org.adminKey) })).json().data;
  t.equal(after.event_id, events[0].id, 'the head is the newest event');
  t.equal(after.hash, events[0].hash);
});
