// The route × principal matrix, generated from the routes the app registered: a new route without
// a rule here fails this test. For each organization route: no key → 401, another tenant's admin
// key → 404 on this tenant's ids, read_only → 403 on writes and 200 on reads, admin → success.
// Every route that takes input also lists bad inputs that must be answered 400.
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { asAdmin, asAgent, bearer, build, createAgent, createKey, createOrg, createWebhook, randomIpv6, type TestOrg } from '../helper.js';
import { githubHeaders } from '../support/signing.js';

interface Ctx {
  app: FastifyInstance;
  a: TestOrg;
  b: TestOrg;
  aReadOnly: { id: string; key: string };
  aSpare: { id: string; key: string };
  aAgent: { id: string; token: string };
  aHook: { id: string; secret: string; url: string };
  aDelivery: string;
}

/** An object nested `depth` levels below its parent: {"n":{"n":…}}. */
const nested = (depth: number): unknown => (depth === 0 ? 1 : { n: nested(depth - 1) });

interface Req {
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
  /** The TCP peer, when the route cares (default: the test's random non-loopback address). */
  remoteAddress?: string;
}

interface Rule {
  auth: 'public' | 'platform' | 'org' | 'agent' | 'webhook' | 'metrics';
  /** Role an organization key needs. */
  role?: 'admin' | 'read_only';
  /** Does the path name a resource of the caller's tenant (so another tenant must get 404)? */
  tenantId?: boolean;
  ok: (ctx: Ctx) => Promise<Req> | Req;
  okStatus: number;
  invalid?: (ctx: Ctx) => Req[];
}

const SQLISH = "1' OR '1'='1";
const LONG = 'x'.repeat(10_000);

const RULES: Record<string, Rule> = {
  'GET /healthz': { auth: 'public', ok: () => ({ url: '/healthz' }), okStatus: 200 },
  'GET /readyz': { auth: 'public', ok: () => ({ url: '/readyz' }), okStatus: 200 },
  // Without METRICS_TOKEN (the matrix app) only a loopback peer is served; the token case is in
  // test/metrics/access.test.ts.
  'GET /metrics': { auth: 'metrics', ok: () => ({ url: '/metrics', remoteAddress: '127.0.0.1' }), okStatus: 200 },
  // The API description and its reference page are public, like the probes (docs/reference/api.md).
  'GET /openapi.json': { auth: 'public', ok: () => ({ url: '/openapi.json' }), okStatus: 200 },
  'GET /docs': { auth: 'public', ok: () => ({ url: '/docs' }), okStatus: 200 },
  'GET /docs/json': { auth: 'public', ok: () => ({ url: '/docs/json' }), okStatus: 200 },
  'GET /docs/yaml': { auth: 'public', ok: () => ({ url: '/docs/yaml' }), okStatus: 200 },
  'GET /docs/static/index.html': { auth: 'public', ok: () => ({ url: '/docs/static/index.html' }), okStatus: 302 },
  'GET /docs/static/swagger-initializer.js': { auth: 'public', ok: () => ({ url: '/docs/static/swagger-initializer.js' }), okStatus: 200 },
  'GET /docs/static/*': { auth: 'public', ok: () => ({ url: '/docs/static/swagger-ui-bundle.js' }), okStatus: 200 },
  'POST /api/v1/organizations': {
    auth: 'platform',
    ok: () => ({ url: '/api/v1/organizations', payload: { name: 'matrix org' } }),
    okStatus: 201,
    invalid: () => [
      { url: '/api/v1/organizations', payload: {} },
      { url: '/api/v1/organizations', payload: { name: 42 } },
      { url: '/api/v1/organizations', payload: { name: LONG } },
      { url: '/api/v1/organizations', payload: { name: 'x', admin: true } },
      { url: '/api/v1/organizations', payload: { name: 'x', slug: SQLISH } },
      { url: '/api/v1/organizations', payload: { name: 'x', slug: 'Upper-Case' } },
      { url: '/api/v1/organizations', payload: { name: 'bell\u0007' } },
      { url: '/api/v1/organizations', payload: ['name'] },
    ],
  },
  'GET /api/v1/organizations': {
    auth: 'platform',
    ok: () => ({ url: '/api/v1/organizations?limit=5' }),
    okStatus: 200,
    invalid: () => [
      { url: '/api/v1/organizations?limit=0' },
      { url: '/api/v1/organizations?limit=abc' },
      { url: '/api/v1/organizations?limit=1000' },
      { url: `/api/v1/organizations?cursor=${encodeURIComponent(SQLISH)}` },
      { url: '/api/v1/organizations?unknown=1' },
    ],
  },
  'GET /api/v1/organizations/:id': {
    auth: 'platform',
    ok: (ctx) => ({ url: `/api/v1/organizations/${ctx.a.id}` }),
    okStatus: 200,
    invalid: () => [{ url: '/api/v1/organizations/not-a-uuid' }, { url: `/api/v1/organizations/${encodeURIComponent(SQLISH)}` }],
  },
  'DELETE /api/v1/organizations/:id': {
    auth: 'platform',
    ok: async (ctx) => ({ url: `/api/v1/organizations/${(await createOrg(ctx.app)).id}` }),
    okStatus: 204,
    invalid: () => [{ url: '/api/v1/organizations/123' }],
  },
  'GET /api/v1/organization': { auth: 'org', role: 'read_only', ok: () => ({ url: '/api/v1/organization' }), okStatus: 200 },
  // Reading status changes nothing: read-only keys may.
  'GET /api/v1/organization/status': { auth: 'org', role: 'read_only', ok: () => ({ url: '/api/v1/organization/status' }), okStatus: 200 },
  'GET /api/v1/status': { auth: 'platform', ok: () => ({ url: '/api/v1/status' }), okStatus: 200 },
  'POST /api/v1/api-keys': {
    auth: 'org',
    role: 'admin',
    ok: () => ({ url: '/api/v1/api-keys', payload: { name: 'matrix', role: 'read_only' } }),
    okStatus: 201,
    invalid: () => [
      { url: '/api/v1/api-keys', payload: { name: 'x' } },
      { url: '/api/v1/api-keys', payload: { name: 'x', role: 'owner' } },
      { url: '/api/v1/api-keys', payload: { name: 'x', role: 'admin', expires_at: 'tomorrow' } },
      { url: '/api/v1/api-keys', payload: { name: 'x', role: 'admin', expires_at: '2001-01-01T00:00:00Z' } },
      // Valid ISO 8601, but past year 9999 once in UTC: Postgres could not store it.
      { url: '/api/v1/api-keys', payload: { name: 'x', role: 'admin', expires_at: '9999-12-31T23:59:59-05:00' } },
      { url: '/api/v1/api-keys', payload: { name: LONG, role: 'admin' } },
      { url: '/api/v1/api-keys', payload: { name: 'x', role: 'admin', organization_id: '00000000-0000-0000-0000-000000000000' } },
    ],
  },
  'GET /api/v1/api-keys': {
    auth: 'org',
    role: 'read_only',
    ok: () => ({ url: '/api/v1/api-keys' }),
    okStatus: 200,
    invalid: () => [{ url: '/api/v1/api-keys?limit=-1' }, { url: '/api/v1/api-keys?cursor=abc' }],
  },
  'GET /api/v1/api-keys/:id': {
    auth: 'org',
    role: 'read_only',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/api-keys/${ctx.aSpare.id}` }),
    okStatus: 200,
    invalid: () => [{ url: `/api/v1/api-keys/${encodeURIComponent(SQLISH)}` }],
  },
  'DELETE /api/v1/api-keys/:id': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/api-keys/${ctx.aSpare.id}` }),
    okStatus: 204,
    invalid: () => [{ url: '/api/v1/api-keys/0' }],
  },
  'GET /api/v1/audit-events': {
    auth: 'org',
    role: 'admin',
    ok: () => ({ url: '/api/v1/audit-events?action=api_key.created&actor_type=api_key' }),
    okStatus: 200,
    invalid: () => [
      { url: '/api/v1/audit-events?actor_type=root' },
      { url: `/api/v1/audit-events?action=${encodeURIComponent(SQLISH)}` },
      { url: '/api/v1/audit-events?since=yesterday' },
      { url: '/api/v1/audit-events?since=0000-01-01T00:00:00Z' },
      { url: `/api/v1/audit-events?until=${encodeURIComponent('9999-12-31T23:00:00-05:00')}` },
      { url: '/api/v1/audit-events?since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z' },
    ],
  },
  'POST /api/v1/agents': {
    auth: 'org',
    role: 'admin',
    ok: () => ({ url: '/api/v1/agents', payload: { name: 'matrix agent', metadata: { a: 1 } } }),
    okStatus: 201,
    invalid: () => [
      { url: '/api/v1/agents', payload: {} },
      { url: '/api/v1/agents', payload: { name: ['x'] } },
      { url: '/api/v1/agents', payload: { name: 'x', metadata: 'nope' } },
      { url: '/api/v1/agents', payload: { name: 'x', metadata: { big: 'y'.repeat(20_000) } } },
      { url: '/api/v1/agents', payload: { name: 'x', metadata: { deep: nested(16) } } },
      // Deeper than a recursive walk (or JSON.stringify) survives: refused, not a stack overflow.
      { url: '/api/v1/agents', payload: `{"name":"x","metadata":{"deep":${'['.repeat(20_000)}${']'.repeat(20_000)}}}`, headers: { 'content-type': 'application/json' } },
      { url: '/api/v1/agents', payload: { name: 'x', status: 'online' } },
    ],
  },
  'GET /api/v1/agents': {
    auth: 'org',
    role: 'read_only',
    ok: () => ({ url: '/api/v1/agents?status=pending' }),
    okStatus: 200,
    invalid: () => [{ url: '/api/v1/agents?status=sleeping' }, { url: `/api/v1/agents?status=${encodeURIComponent(SQLISH)}` }],
  },
  'GET /api/v1/agents/:id': {
    auth: 'org',
    role: 'read_only',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/agents/${ctx.aAgent.id}` }),
    okStatus: 200,
    invalid: () => [{ url: '/api/v1/agents/abc' }],
  },
  'PATCH /api/v1/agents/:id': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/agents/${ctx.aAgent.id}`, payload: { description: 'patched' } }),
    okStatus: 200,
    invalid: (ctx) => [
      { url: `/api/v1/agents/${ctx.aAgent.id}`, payload: {} },
      { url: `/api/v1/agents/${ctx.aAgent.id}`, payload: { disabled: 'yes' } },
      { url: `/api/v1/agents/${ctx.aAgent.id}`, payload: { metadata: { deep: nested(16) } } },
      { url: `/api/v1/agents/${ctx.aAgent.id}`, payload: { organization_id: ctx.b.id } },
      { url: '/api/v1/agents/1', payload: { name: 'x' } },
    ],
  },
  'DELETE /api/v1/agents/:id': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/agents/${ctx.aAgent.id}` }),
    okStatus: 204,
    invalid: () => [{ url: `/api/v1/agents/${encodeURIComponent(SQLISH)}` }],
  },
  'POST /api/v1/agents/:id/token': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/agents/${ctx.aAgent.id}/token`, payload: { grace_seconds: 10 } }),
    okStatus: 200,
    invalid: (ctx) => [
      { url: `/api/v1/agents/${ctx.aAgent.id}/token`, payload: { grace_seconds: -1 } },
      { url: `/api/v1/agents/${ctx.aAgent.id}/token`, payload: { grace_seconds: 1.5 } },
      { url: `/api/v1/agents/${ctx.aAgent.id}/token`, payload: { grace_seconds: '10' } },
    ],
  },
  'POST /api/v1/webhooks': {
    auth: 'org',
    role: 'admin',
    ok: (ctx) => ({ url: '/api/v1/webhooks', payload: { name: 'matrix hook', agent_id: ctx.aAgent.id } }),
    okStatus: 201,
    invalid: () => [
      { url: '/api/v1/webhooks', payload: {} },
      { url: '/api/v1/webhooks', payload: { name: 'x', signature_scheme: 'hmac' } },
      { url: '/api/v1/webhooks', payload: { name: 'x', agent_id: 'nope' } },
      { url: '/api/v1/webhooks', payload: { name: 'x', secret: 'mine' } },
    ],
  },
  'GET /api/v1/webhooks': { auth: 'org', role: 'read_only', ok: () => ({ url: '/api/v1/webhooks' }), okStatus: 200, invalid: () => [{ url: '/api/v1/webhooks?limit=x' }] },
  'GET /api/v1/webhooks/:id': {
    auth: 'org',
    role: 'read_only',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/webhooks/${ctx.aHook.id}` }),
    okStatus: 200,
    invalid: () => [{ url: '/api/v1/webhooks/x' }],
  },
  'PATCH /api/v1/webhooks/:id': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/webhooks/${ctx.aHook.id}`, payload: { description: 'patched' } }),
    okStatus: 200,
    invalid: (ctx) => [
      { url: `/api/v1/webhooks/${ctx.aHook.id}`, payload: {} },
      { url: `/api/v1/webhooks/${ctx.aHook.id}`, payload: { enabled: 'no' } },
    ],
  },
  'DELETE /api/v1/webhooks/:id': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/webhooks/${ctx.aHook.id}` }),
    okStatus: 204,
    invalid: () => [{ url: `/api/v1/webhooks/${encodeURIComponent(SQLISH)}` }],
  },
  'POST /api/v1/webhooks/:id/secret': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/webhooks/${ctx.aHook.id}/secret`, payload: { overlap_seconds: 60 } }),
    okStatus: 200,
    invalid: (ctx) => [{ url: `/api/v1/webhooks/${ctx.aHook.id}/secret`, payload: { overlap_seconds: 604_801 } }],
  },
  'GET /api/v1/webhooks/:id/deliveries': {
    auth: 'org',
    role: 'read_only',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/webhooks/${ctx.aHook.id}/deliveries?status=pending` }),
    okStatus: 200,
    invalid: (ctx) => [{ url: `/api/v1/webhooks/${ctx.aHook.id}/deliveries?status=lost` }],
  },
  'GET /api/v1/webhooks/:id/deliveries/:delivery_id': {
    auth: 'org',
    role: 'read_only',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/webhooks/${ctx.aHook.id}/deliveries/${ctx.aDelivery}` }),
    okStatus: 200,
    invalid: (ctx) => [{ url: `/api/v1/webhooks/${ctx.aHook.id}/deliveries/1` }],
  },
  'POST /api/v1/webhooks/:id/deliveries/:delivery_id/redeliver': {
    auth: 'org',
    role: 'admin',
    tenantId: true,
    ok: (ctx) => ({ url: `/api/v1/webhooks/${ctx.aHook.id}/deliveries/${ctx.aDelivery}/redeliver` }),
    okStatus: 200,
    invalid: (ctx) => [{ url: `/api/v1/webhooks/${ctx.aHook.id}/deliveries/${encodeURIComponent(SQLISH)}/redeliver` }],
  },
  'POST /api/v1/hooks/:webhook_id': {
    auth: 'webhook',
    ok: async (ctx) => ({ url: ctx.aHook.url, payload: '{"ok":true}', headers: await githubHeaders(ctx.aHook.secret, '{"ok":true}') }),
    okStatus: 202,
  },
  'POST /api/v1/agent/deliveries/lease': {
    auth: 'agent',
    ok: () => ({ url: '/api/v1/agent/deliveries/lease', payload: { limit: 1 } }),
    okStatus: 200,
    invalid: () => [
      { url: '/api/v1/agent/deliveries/lease', payload: { limit: 0 } },
      { url: '/api/v1/agent/deliveries/lease', payload: { limit: 101 } },
      { url: '/api/v1/agent/deliveries/lease', payload: { lease_seconds: 5 } },
    ],
  },
  'POST /api/v1/agent/deliveries/:id/ack': {
    auth: 'agent',
    ok: async (ctx) => {
      await ctx.app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(ctx.aAgent.token), payload: { limit: 10 } });
      return { url: `/api/v1/agent/deliveries/${ctx.aDelivery}/ack` };
    },
    okStatus: 200,
    invalid: () => [{ url: '/api/v1/agent/deliveries/zzz/ack' }],
  },
  'POST /api/v1/agent/deliveries/:id/nack': {
    auth: 'agent',
    ok: async (ctx) => {
      await ctx.app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(ctx.aAgent.token), payload: { limit: 10 } });
      return { url: `/api/v1/agent/deliveries/${ctx.aDelivery}/nack`, payload: { retry_after_seconds: 5 } };
    },
    okStatus: 200,
    invalid: (ctx) => [{ url: `/api/v1/agent/deliveries/${ctx.aDelivery}/nack`, payload: { retry_after_seconds: -5 } }],
  },
  // Without GOOGLE_OAUTH_* configured (the matrix app) these answer 503 once authorized; the
  // configured flow is in test/oauth/flow.test.ts.
  'GET /api/v1/oauth/google/start': {
    auth: 'org',
    role: 'admin',
    ok: () => ({ url: '/api/v1/oauth/google/start?redirect=false' }),
    okStatus: 503,
    invalid: () => [{ url: '/api/v1/oauth/google/start?redirect=maybe' }, { url: '/api/v1/oauth/google/start?x=1' }],
  },
  'GET /api/v1/oauth/google/callback': { auth: 'public', ok: () => ({ url: '/api/v1/oauth/google/callback?code=x&state=y' }), okStatus: 503 },
  'GET /api/v1/oauth/status': { auth: 'org', role: 'read_only', ok: () => ({ url: '/api/v1/oauth/status' }), okStatus: 200 },
  'DELETE /api/v1/oauth/google': { auth: 'org', role: 'admin', ok: () => ({ url: '/api/v1/oauth/google' }), okStatus: 404 },
  'POST /api/v1/agent/credentials/google/token': { auth: 'agent', ok: () => ({ url: '/api/v1/agent/credentials/google/token' }), okStatus: 503 },
  'POST /api/v1/agent/auth': { auth: 'agent', ok: () => ({ url: '/api/v1/agent/auth' }), okStatus: 200 },
  'POST /api/v1/agent/heartbeat': {
    auth: 'agent',
    ok: () => ({ url: '/api/v1/agent/heartbeat', payload: { status_detail: 'ok' } }),
    okStatus: 200,
    invalid: () => [
      { url: '/api/v1/agent/heartbeat', payload: { status_detail: 5 } },
      { url: '/api/v1/agent/heartbeat', payload: { status: 'online' } },
      { url: '/api/v1/agent/heartbeat', payload: { version: 'v'.repeat(500) } },
    ],
  },
};

t.test('every registered route has a rule, and every rule a route', async (t) => {
  const app = await build(t);
  const registered = new Set(app.knownRoutes.filter((route) => route.method !== 'HEAD').map((route) => `${route.method} ${route.url}`));
  for (const route of registered) t.ok(RULES[route], `rule for ${route}`);
  for (const rule of Object.keys(RULES)) t.ok(registered.has(rule), `route for rule ${rule}`);
});

async function context(app: FastifyInstance): Promise<Ctx> {
  const a = await createOrg(app);
  const b = await createOrg(app);
  const aAgent = await createAgent(app, a.adminKey);
  const aHook = await createWebhook(app, a.adminKey, { agent_id: aAgent.id });
  const body = '{"matrix":true}';
  const delivered = await app.inject({ method: 'POST', url: aHook.url, headers: await githubHeaders(aHook.secret, body), payload: body });
  return {
    app,
    a,
    b,
    aReadOnly: await createKey(app, a.adminKey, 'read_only'),
    aSpare: await createKey(app, a.adminKey, 'read_only'),
    aAgent,
    aHook,
    aDelivery: delivered.json().delivery_id,
  };
}

for (const [route, rule] of Object.entries(RULES)) {
  const method = route.split(' ')[0] as 'GET' | 'POST' | 'PATCH' | 'DELETE';
  t.test(route, async (t) => {
    const app = await build(t);
    const ctx = await context(app);
    // One address per route test, so agent-auth limits of one case never affect another.
    const remoteAddress = randomIpv6();
    const send = async (req: Req, headers: Record<string, string>) =>
      app.inject({ method, url: req.url, headers: { ...headers, ...req.headers }, remoteAddress: req.remoteAddress ?? remoteAddress, ...(req.payload !== undefined ? { payload: req.payload as object } : {}) });

    if (rule.auth === 'webhook') {
      const { headers: _signed, ...unsigned } = await rule.ok(ctx);
      const res = await send(unsigned, { 'content-type': 'application/json' });
      t.equal(res.statusCode, 403, 'no signature → 403');
      t.equal(res.json().code, 'signature_missing');
      t.equal((await send(unsigned, { ...bearer(ctx.a.adminKey), 'content-type': 'application/json' })).statusCode, 403, 'an API key is no signature');
    }
    if (rule.auth === 'metrics') {
      const { remoteAddress: _loopback, ...remote } = await rule.ok(ctx);
      for (const headers of [{}, bearer(ctx.a.adminKey), asAdmin, asAgent(ctx.aAgent.token)]) {
        const res = await send(remote, headers);
        t.equal(res.statusCode, 403, 'a non-loopback peer → 403, whatever credential it sends');
        t.equal(res.json().code, 'metrics_loopback_only');
      }
    }
    if (rule.auth !== 'public' && rule.auth !== 'webhook' && rule.auth !== 'metrics') {
      const none = await send(await rule.ok(ctx), {});
      t.equal(none.statusCode, 401, 'no credentials → 401');
      t.equal(none.json().code, 'unauthorized');
    }
    if (rule.auth === 'platform') {
      t.equal((await send(await rule.ok(ctx), bearer(ctx.a.adminKey))).statusCode, 401, 'an organization key → 401');
    }
    if (rule.auth === 'org') {
      t.equal((await send(await rule.ok(ctx), asAdmin)).statusCode, 401, 'the platform admin token → 401');
      if (rule.tenantId) {
        const other = await send(await rule.ok(ctx), bearer(ctx.b.adminKey));
        t.equal(other.statusCode, 404, "another tenant's admin key → 404");
        t.equal(other.json().code, 'not_found');
      }
      const readOnly = await send(await rule.ok(ctx), bearer(ctx.aReadOnly.key));
      if (rule.role === 'admin') {
        t.equal(readOnly.statusCode, 403, 'read_only key → 403');
        t.equal(readOnly.json().code, 'forbidden');
      } else {
        t.equal(readOnly.statusCode, rule.okStatus, 'read_only key → success');
      }
    }
    if (rule.auth === 'agent') {
      t.equal((await send(await rule.ok(ctx), bearer(ctx.a.adminKey))).statusCode, 401, 'an operator key → 401');
      t.equal((await send(await rule.ok(ctx), asAdmin)).statusCode, 401, 'the platform admin token → 401');
    }
    const credentials =
      rule.auth === 'platform' ? asAdmin : rule.auth === 'org' ? bearer(ctx.a.adminKey) : rule.auth === 'agent' ? asAgent(ctx.aAgent.token) : {};
    const ok = await send(await rule.ok(ctx), credentials);
    t.equal(ok.statusCode, rule.okStatus, `authorized → ${rule.okStatus}`);
    for (const bad of rule.invalid?.(ctx) ?? []) {
      const res = await send(bad, credentials);
      t.equal(res.statusCode, 400, `400 for ${bad.url} ${JSON.stringify(bad.payload ?? '').slice(0, 60)}`);
      t.match(String(res.headers['content-type']), 'application/problem+json');
      t.match(res.json().code, /^(validation_failed|invalid_json)$/);
    }
    // Every API route refuses a parameter it does not know, those that take none too. Senders and
    // Google's redirect may add their own.
    if (rule.auth !== 'webhook' && route.includes(' /api/v1/') && !route.endsWith('/google/callback')) {
      const req = await rule.ok(ctx);
      const res = await send({ ...req, url: `${req.url}${req.url.includes('?') ? '&' : '?'}unknown_parameter=1` }, credentials);
      t.equal(res.statusCode, 400, 'an unknown query parameter → 400');
      t.equal(res.json().code, 'validation_failed');
      t.match(res.body, 'unknown_parameter');
    }
  });
}

t.test('a body over BODY_LIMIT_BYTES on a real route answers 413; malformed JSON 400', async (t) => {
  const app = await build(t);
  const big = await app.inject({
    method: 'POST',
    url: '/api/v1/organizations',
    headers: { ...asAdmin, 'content-type': 'application/json' },
    payload: JSON.stringify({ name: 'x'.repeat(1_100_000) }),
  });
  t.equal(big.statusCode, 413);
  t.equal(big.json().code, 'payload_too_large');
  const broken = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: { ...asAdmin, 'content-type': 'application/json' }, payload: '{"name": "x"' });
  t.equal(broken.statusCode, 400);
  t.equal(broken.json().code, 'invalid_json');
  for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'application/json-seq']) {
    const wrong = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: { ...asAdmin, 'content-type': type }, payload: '{"name": "x"}' });
    t.equal(wrong.statusCode, 415, type);
    t.equal(wrong.json().code, 'unsupported_media_type');
  }
  const json = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: { ...asAdmin, 'content-type': 'application/json; charset=utf-8' }, payload: '{"name": "charset ok"}' });
  t.equal(json.statusCode, 201, 'application/json with a charset is JSON');
});
