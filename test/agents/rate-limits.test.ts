import t from 'tap';
import { asAgent, build, createAgent, createOrg, randomIpv6, TEST_REDIS_URL } from '../helper.js';

const bad = `sba_0123456789abcdef_${'x'.repeat(43)}`;

t.test('the 21st agent auth attempt from one IP within the window gets 429 with Retry-After; another IP is unaffected', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const ip = randomIpv6();
  for (let i = 1; i <= 20; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(i % 2 ? agent.token : bad), remoteAddress: ip });
    t.equal(res.statusCode, i % 2 ? 200 : 401, `attempt ${i}`);
  }
  const limited = await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token), remoteAddress: ip });
  t.equal(limited.statusCode, 429);
  t.equal(limited.json().code, 'rate_limited');
  t.ok(Number(limited.headers['retry-after']) >= 1 && Number(limited.headers['retry-after']) <= 60);
  t.match(String(limited.headers['content-type']), 'application/problem+json');
  const elsewhere = await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token), remoteAddress: randomIpv6() });
  t.equal(elsewhere.statusCode, 200);
});

t.test('failed agent authentications on any agent route count against the per-IP limit', async (t) => {
  const app = await build(t);
  const ip = randomIpv6();
  for (let i = 0; i < 20; i++) {
    t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(bad), remoteAddress: ip })).statusCode, 401);
  }
  const limited = await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(bad), remoteAddress: ip });
  t.equal(limited.statusCode, 429);
});

t.test('50 agents behind one IP making authenticated calls are not limited by the IP bucket', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const ip = randomIpv6();
  const agents = [];
  for (let i = 0; i < 50; i++) agents.push(await createAgent(app, org.adminKey));
  const statuses = new Set<number>();
  for (let round = 0; round < 2; round++) {
    for (const agent of agents) {
      statuses.add((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token), remoteAddress: ip })).statusCode);
    }
  }
  t.same([...statuses], [200], '100 authenticated calls from one IP, all 200');
});

t.test('authenticated agent traffic is limited per agent (RATE_LIMIT_AGENT_MAX)', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_AGENT_MAX: '5' } });
  const org = await createOrg(app);
  const busy = await createAgent(app, org.adminKey);
  const calm = await createAgent(app, org.adminKey);
  const ip = randomIpv6();
  for (let i = 0; i < 5; i++) {
    t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(busy.token), remoteAddress: ip })).statusCode, 200);
  }
  const limited = await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(busy.token), remoteAddress: ip });
  t.equal(limited.statusCode, 429);
  t.equal(limited.json().limiter, 'agent');
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(calm.token), remoteAddress: ip })).statusCode, 200, 'the neighbour is fine');
});

t.test('with REDIS_URL the per-IP limit holds across instances', { skip: TEST_REDIS_URL ? false : 'needs TEST_REDIS_URL' }, async (t) => {
  const env = { REDIS_URL: TEST_REDIS_URL };
  const one = await build(t, { env });
  const two = await build(t, { env });
  const ip = randomIpv6();
  for (let i = 0; i < 20; i++) {
    const app = i % 2 ? one : two;
    t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip })).statusCode, 401);
  }
  t.equal((await one.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip })).statusCode, 429);
  t.equal((await two.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip })).statusCode, 429);
  t.equal(one.limiters.shared, true);
});

t.test('without REDIS_URL limits are per process', async (t) => {
  const one = await build(t);
  const two = await build(t);
  const ip = randomIpv6();
  for (let i = 0; i < 20; i++) await one.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip });
  t.equal((await one.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip })).statusCode, 429);
  t.equal((await two.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip })).statusCode, 401, 'the other process has its own count');
  t.equal(one.limiters.shared, false);
});

t.test('an unreachable Redis does not take the API down: limits fall back to the process', async (t) => {
  const app = await build(t, { env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const ip = randomIpv6();
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token), remoteAddress: ip })).statusCode, 200);
  for (let i = 0; i < 19; i++) await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip });
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip })).statusCode, 429, 'still limited, per process');
  t.equal(app.limiters.shared, false);
});
