// Agent authentication shares one token query between concurrent requests: every request still
// gets its own verdict, and a revocation made anywhere is refused at once.
import t from 'tap';
import { asAgent, bearer, build, createAgent, createOrg } from '../helper.js';

t.test('concurrent authentications each get their own agent or their own 401', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agents = await Promise.all(Array.from({ length: 6 }, () => createAgent(app, org.adminKey)));
  const wrongSecret = `${agents[0]!.token.slice(0, -4)}AAAA`;
  const unknown = `sba_0123456789abcdef_${'A'.repeat(43)}`;
  const tokens = [...agents.map((agent) => agent.token), wrongSecret, unknown, agents[2]!.token];
  const responses = await Promise.all(tokens.map((token) => app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(token) })));
  agents.forEach((agent, i) => {
    t.equal(responses[i]!.statusCode, 200);
    t.equal(responses[i]!.json().agent.id, agent.id, 'its own agent');
  });
  t.equal(responses[6]!.statusCode, 401, 'wrong secret');
  t.equal(responses[7]!.statusCode, 401, 'unknown token');
  t.equal(responses[8]!.json().agent.id, agents[2]!.id, 'the same token twice in one batch');
});

t.test('a token rotated or an agent disabled on another instance is refused at once', async (t) => {
  const a = await build(t);
  const b = await build(t, { database: a.database });
  const org = await createOrg(b);
  const agent = await createAgent(b, org.adminKey);
  const other = await createAgent(b, org.adminKey);
  t.equal((await a.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) })).statusCode, 200);
  const rotated = await b.inject({ method: 'POST', url: `/api/v1/agents/${agent.id}/token`, headers: bearer(org.adminKey) });
  t.equal(rotated.statusCode, 200);
  t.equal((await a.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) })).statusCode, 401, 'old token refused on A');
  t.equal((await a.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(rotated.json().token) })).statusCode, 200, 'new token accepted on A');
  t.equal((await a.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(other.token) })).statusCode, 200);
  await b.inject({ method: 'PATCH', url: `/api/v1/agents/${other.id}`, headers: bearer(org.adminKey), payload: { disabled: true } });
  const disabled = await a.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(other.token) });
  t.equal(disabled.statusCode, 403);
  t.equal(disabled.json().code, 'agent_disabled');
});
