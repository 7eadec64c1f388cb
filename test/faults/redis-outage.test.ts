// Redis stops while REDIS_URL is set: the API keeps answering with per-process limits (and says
// so in the log), and shared limits resume when Redis returns on the same address. Uses a private
// redis-server so the shared one other tests use is never stopped.
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { asAgent, build, captureLogs, createOrg, createWebhook, randomIpv6, sleep } from '../helper.js';
import { redisServerAvailable, startRedisServer } from '../support/redis-server.js';
import { githubHeaders } from '../support/signing.js';

const bad = `sba_0123456789abcdef_${'x'.repeat(43)}`;
const metric = async (app: FastifyInstance, name: string) => {
  const text = (await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1' })).body;
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1]);
};
const attempt = (app: FastifyInstance, ip: string) =>
  app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(bad), remoteAddress: ip });

t.test('with Redis gone, limits fall back to each process (logged) and the API keeps answering; shared again when it returns', { skip: redisServerAvailable() ? false : 'needs redis-server on PATH to run a private Redis' }, async (t) => {
  const redis = (await startRedisServer())!;
  t.teardown(() => redis.stop());
  const logsA = captureLogs();
  const logsB = captureLogs();
  const env = { REDIS_URL: redis.url, LOG_LEVEL: 'info' };
  const a = await build(t, { env, logDestination: logsA.destination });
  const b = await build(t, { env, logDestination: logsB.destination });
  const org = await createOrg(a);
  const hook = await createWebhook(a, org.adminKey);

  const shared = randomIpv6();
  for (let i = 0; i < 20; i++) t.equal((await attempt(i % 2 ? a : b, shared)).statusCode, 401, `shared attempt ${i + 1}`);
  t.equal((await attempt(a, shared)).statusCode, 429, 'the 21st attempt over both instances is limited on one…');
  t.equal((await attempt(b, shared)).statusCode, 429, '…and on the other');
  t.equal(a.limiters.shared, true, 'limits are shared through Redis');

  await redis.stop();
  const local = randomIpv6();
  let slowest = 0;
  for (let i = 0; i < 20; i++) {
    const started = Date.now();
    t.equal((await attempt(a, local)).statusCode, 401, `attempt ${i + 1} with Redis down is answered`);
    slowest = Math.max(slowest, Date.now() - started);
  }
  t.ok(slowest < 1500, `no request waits on the missing Redis for long (slowest ${slowest} ms)`);
  t.equal((await attempt(a, local)).statusCode, 429, 'this process still limits: the 21st attempt on it is refused');
  t.equal((await attempt(b, local)).statusCode, 401, 'the other process counts on its own');
  t.equal(a.limiters.shared, false, 'not shared while Redis is down');
  t.match(logsA.text(), 'Redis unavailable: rate limits fall back to this process until it returns', 'the fallback is logged');
  t.ok((await metric(a, 'switchboard_rate_limit_fallbacks_total')) >= 1, '…and counted');
  t.equal(await metric(a, 'switchboard_rate_limit_shared'), 0, 'the shared-limits gauge says so');
  const body = '{"redis":"down"}';
  const ingest = await a.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body, remoteAddress: randomIpv6() });
  t.equal(ingest.statusCode, 202, 'webhook ingest is unaffected');

  await redis.start();
  for (const app of [a, b]) {
    const deadline = Date.now() + 15_000;
    while (!app.limiters.shared && Date.now() < deadline) {
      await attempt(app, randomIpv6());
      if (!app.limiters.shared) await sleep(200);
    }
    t.equal(app.limiters.shared, true, 'back on Redis without a restart');
  }
  t.match(logsA.text(), 'Redis answers again: rate limits are shared across instances', 'the return is logged');
  t.equal(await metric(a, 'switchboard_rate_limit_shared'), 1, 'the gauge is back to shared');

  const again = randomIpv6();
  for (let i = 0; i < 20; i++) t.equal((await attempt(i % 2 ? a : b, again)).statusCode, 401, `shared again: attempt ${i + 1}`);
  t.equal((await attempt(b, again)).statusCode, 429, 'the 21st attempt over both instances is limited again');
});
