import { eq } from 'drizzle-orm';
import t from 'tap';
import { agentTokens } from '../../src/db/schema.js';
import { asAgent, bearer, build, captureLogs, createAgent, createKey, createOrg } from '../helper.js';

t.test('an operator registers an agent and gets its token once', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/agents',
    headers: bearer(org.adminKey),
    payload: { name: 'triage bot', description: 'reads issues', metadata: { team: 'support', replicas: 2 } },
  });
  t.equal(res.statusCode, 201);
  const body = res.json();
  t.match(body.agent, { name: 'triage bot', description: 'reads issues', metadata: { team: 'support', replicas: 2 }, status: 'pending', last_seen_at: null });
  t.match(body.token, /^sba_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const got = await app.inject({ method: 'GET', url: `/api/v1/agents/${body.agent.id}`, headers: bearer(org.adminKey) });
  t.equal(got.statusCode, 200);
  t.notMatch(got.body, body.token.slice(21));
  const [row] = await app.db.select().from(agentTokens).where(eq(agentTokens.agentId, body.agent.id));
  t.not(row?.secretHash, body.token.slice(21), 'only a hash is stored');
});

t.test('metadata nests up to 16 levels deep; one more is refused with the reason', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const nested = (depth: number): unknown => (depth === 0 ? 'leaf' : { n: nested(depth - 1) });
  const ok = await app.inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(org.adminKey), payload: { name: 'deep', metadata: { n: nested(15) } } });
  t.equal(ok.statusCode, 201);
  t.same(ok.json().agent.metadata, { n: nested(15) }, 'stored and returned whole');
  const deep = await app.inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(org.adminKey), payload: { name: 'deeper', metadata: { n: nested(16) } } });
  t.equal(deep.statusCode, 400);
  t.equal(deep.json().code, 'validation_failed');
  t.match(deep.body, 'at most 16 levels');
});

t.test('metadata numbers JSON cannot carry (1e400 parses as Infinity) are refused, not stored as null', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  for (const raw of ['{"name":"big","metadata":{"n":1e400}}', '{"name":"big","metadata":{"list":[1,{"m":-1e999}]}}']) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/agents', headers: { ...bearer(org.adminKey), 'content-type': 'application/json' }, payload: raw });
    t.equal(res.statusCode, 400, raw);
    t.equal(res.json().code, 'validation_failed');
    t.match(res.body, 'must be finite');
  }
  const fine = await app.inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(org.adminKey), payload: { name: 'ok', metadata: { n: 1e300, m: -0.5 } } });
  t.equal(fine.statusCode, 201);
  t.same(fine.json().agent.metadata, { n: 1e300, m: -0.5 });
});

t.test('an agent checks its token with POST /agent/auth (X-Agent-Token or Bearer) and shows up online', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey, { name: 'worker-1' });
  for (const headers of [asAgent(agent.token), bearer(agent.token)]) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers });
    t.equal(res.statusCode, 200);
    t.same(res.json(), { agent: { id: agent.id, name: 'worker-1', status: 'online' }, organization: { id: org.id, name: org.name } });
  }
  let status = '';
  for (let i = 0; i < 50 && status !== 'online'; i++) {
    status = (await app.inject({ method: 'GET', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey) })).json().agent.status;
    if (status !== 'online') await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.equal(status, 'online');
  const online = await app.inject({ method: 'GET', url: '/api/v1/agents?status=online', headers: bearer(org.adminKey) });
  t.same(online.json().data.map((a: { id: string }) => a.id), [agent.id]);
  const pending = await app.inject({ method: 'GET', url: '/api/v1/agents?status=pending', headers: bearer(org.adminKey) });
  t.same(pending.json().data, []);
});

t.test('an invalid agent token gets 401 with a challenge', async (t) => {
  const app = await build(t);
  for (const headers of [{}, asAgent('nope'), asAgent(`sba_0123456789abcdef_${'x'.repeat(43)}`)]) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers, remoteAddress: '192.0.2.10' });
    t.equal(res.statusCode, 401);
    t.equal(res.json().code, 'unauthorized');
    t.match(String(res.headers['www-authenticate']), /^Bearer/);
  }
});

t.test('heartbeats record detail and version', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const res = await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token), payload: { status_detail: 'idle', version: '1.4.2' } });
  t.equal(res.statusCode, 200);
  t.match(res.json().agent, { id: agent.id, status: 'online', last_seen_at: String });
  const bare = await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token) });
  t.equal(bare.statusCode, 200);
  const got = (await app.inject({ method: 'GET', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey) })).json().agent;
  t.match(got, { status: 'online', status_detail: 'idle', version: '1.4.2' });
  const bad = await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token), payload: { version: 'x'.repeat(101) } });
  t.equal(bad.statusCode, 400);
});

t.test('token rotation without grace: the old token stops at once', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const res = await app.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/token`, headers: bearer(org.adminKey) });
  t.equal(res.statusCode, 200);
  const fresh = res.json().token;
  t.not(fresh, agent.token);
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) })).statusCode, 401);
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(fresh) })).statusCode, 200);
});

t.test('token rotation with grace: both work until the window ends', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const res = await app.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/token`, headers: bearer(org.adminKey), payload: { grace_seconds: 600 } });
  const fresh = res.json().token;
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token) })).statusCode, 200, 'old token still works');
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(fresh) })).statusCode, 200, 'new token works');
  // The window ends (moved into the past rather than waiting ten minutes).
  await app.db.update(agentTokens).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(agentTokens.publicId, agent.token.slice(4, 20)));
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token) })).statusCode, 401, 'old token refused after the window');
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(fresh) })).statusCode, 200);
  const tooLong = await app.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/token`, headers: bearer(org.adminKey), payload: { grace_seconds: 3601 } });
  t.equal(tooLong.statusCode, 400);
});

t.test('two rotations without grace at once: afterwards exactly one of the two new tokens works', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const rotate = () => app.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/token`, headers: bearer(org.adminKey), payload: { grace_seconds: 0 } });
  const issued = (await Promise.all([rotate(), rotate()])).map((res) => res.json().token as string);
  const works = [];
  for (const token of [agent.token, ...issued]) works.push((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(token) })).statusCode === 200);
  t.same(works.filter(Boolean).length, 1, `exactly one token works (old, first, second: ${works.join(', ')})`);
  t.notOk(works[0], 'never the old one');
});

t.test('a disabled agent is refused with 403 agent_disabled; re-enabled it works again', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const off = await app.inject({ method: 'PATCH', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey), payload: { disabled: true } });
  t.equal(off.json().agent.status, 'disabled');
  const refused = await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) });
  t.equal(refused.statusCode, 403);
  t.equal(refused.json().code, 'agent_disabled');
  const listed = await app.inject({ method: 'GET', url: '/api/v1/agents?status=disabled', headers: bearer(org.adminKey) });
  t.same(listed.json().data.map((a: { id: string }) => a.id), [agent.id]);
  await app.inject({ method: 'PATCH', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey), payload: { disabled: false, name: 'renamed' } });
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) })).statusCode, 200);
});

t.test('a deleted agent gets 401', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey) })).statusCode, 204);
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) })).statusCode, 401);
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey) })).statusCode, 404);
});

t.test("another tenant's agent id answers 404 to operators on every agent route", async (t) => {
  const app = await build(t);
  const a = await createOrg(app);
  const b = await createOrg(app);
  const agent = await createAgent(app, a.adminKey);
  const url = `/api/v1/agents/${agent.id}`;
  for (const [method, path, payload] of [
    ['GET', url, undefined],
    ['PATCH', url, { disabled: true }],
    ['DELETE', url, undefined],
    ['POST', `${url}/token`, {}],
  ] as const) {
    const res = await app.inject({ method, url: path, headers: bearer(b.adminKey), ...(payload ? { payload } : {}) });
    t.equal(res.statusCode, 404, `${method} ${path}`);
  }
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) })).statusCode, 200, 'untouched');
});

t.test('a failed agent authentication logs at most 6 characters of the token (and its public id)', async (t) => {
  const logs = captureLogs();
  const app = await build(t, { env: { LOG_LEVEL: 'trace' }, logDestination: logs.destination });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const wrong = `${agent.token.slice(0, 21)}${'Q'.repeat(43)}`;
  await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(wrong) });
  await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token) });
  const text = logs.text();
  t.match(text, 'agent authentication failed');
  t.match(text, agent.token.slice(4, 20), 'the public id part is logged');
  for (const token of [agent.token, wrong]) {
    const secret = token.slice(21);
    for (let i = 0; i + 7 <= secret.length; i++) t.notMatch(text, secret.slice(i, i + 7));
  }
});

t.test('agent lifecycle and failed authentications are audited', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  await app.inject({ method: 'PATCH', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey), payload: { name: 'x' } });
  await app.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/token`, headers: bearer(org.adminKey), payload: { grace_seconds: 60 } });
  const wrong = `${agent.token.slice(0, 21)}${'R'.repeat(43)}`;
  for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(wrong) });
  await app.inject({ method: 'DELETE', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey) });
  await app.auditFailures.flush();
  const events = (await app.inject({ method: 'GET', url: '/api/v1/audit-events', headers: bearer(org.adminKey) })).json().data;
  const actions = events.map((event: { action: string }) => event.action);
  for (const action of ['agent.created', 'agent.updated', 'agent.token_rotated', 'agent.deleted', 'agent.auth_failed']) t.ok(actions.includes(action), action);
  const failed = events.find((event: { action: string }) => event.action === 'agent.auth_failed');
  t.match(failed, { count: 3, outcome: 'failure', details: { reason: 'invalid_secret' } });
  t.notMatch(JSON.stringify(events), agent.token.slice(21));
});

t.test('a read-only key lists agents but cannot create, change or rotate them', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const ro = await createKey(app, org.adminKey, 'read_only');
  const agent = await createAgent(app, org.adminKey);
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(ro.key) })).statusCode, 200);
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(ro.key), payload: { name: 'x' } })).statusCode, 403);
  t.equal((await app.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/token`, headers: bearer(ro.key) })).statusCode, 403);
});
