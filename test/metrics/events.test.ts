// Each counter moves when its event happens, driven by real requests: authentication failures,
// rate-limit rejections, webhook deliveries accepted/duplicate/rejected, signature failures, and
// the Redis fallback of the rate limits.
import t from 'tap';
import { asAdmin, asAgent, bearer, build, createAgent, createOrg, createWebhook, randomIpv6, TEST_REDIS_URL } from '../helper.js';
import { sample, samplesOf, scrape } from '../support/prometheus.js';
import { githubHeaders } from '../support/signing.js';

const AGENT_FAILURES = 'switchboard_agent_auth_failures_total';
const DELIVERIES = 'switchboard_webhook_deliveries_total';
const SIGNATURES = 'switchboard_webhook_signature_failures_total';
const REJECTIONS = 'switchboard_rate_limit_rejections_total';

t.test('every failed agent authentication counts by reason, and six in an hour cross the runbook threshold', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const ip = randomIpv6();
  const heartbeat = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers, remoteAddress: ip, payload: {} });
  t.equal((await heartbeat(asAgent(agent.token))).statusCode, 200);
  t.equal(sample(await scrape(app), AGENT_FAILURES, { reason: 'unknown_token' }), 0, 'a good token is no failure');

  t.equal((await heartbeat({})).statusCode, 401);
  t.equal((await heartbeat(asAgent('not-a-token'))).statusCode, 401);
  t.equal((await heartbeat(asAgent(`sba_0123456789abcdef_${'x'.repeat(43)}`))).statusCode, 401);
  const [prefix, publicId] = agent.token.split('_');
  t.equal((await heartbeat(asAgent(`${prefix}_${publicId}_${'y'.repeat(43)}`))).statusCode, 401);
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: bearer(org.adminKey), remoteAddress: ip })).statusCode, 401, 'an API key is no agent token');
  t.equal((await heartbeat(asAgent('still-not-a-token'))).statusCode, 401);

  const scraped = await scrape(app);
  t.equal(sample(scraped, AGENT_FAILURES, { reason: 'missing_credentials' }), 1);
  t.equal(sample(scraped, AGENT_FAILURES, { reason: 'malformed_token' }), 3);
  t.equal(sample(scraped, AGENT_FAILURES, { reason: 'unknown_token' }), 1);
  t.equal(sample(scraped, AGENT_FAILURES, { reason: 'invalid_secret' }), 1);
  const total = samplesOf(scraped, AGENT_FAILURES).reduce((sum, s) => sum + s.value, 0);
  t.equal(total, 6, 'sum(increase(switchboard_agent_auth_failures_total[1h])) > 5 fires');
  t.notMatch(scraped.text, agent.token);
  t.notMatch(scraped.text, publicId!, 'no token id in a label');
});

t.test('failed API key and platform admin authentications count by reason', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  await app.inject({ method: 'GET', url: '/api/v1/organization' });
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer('sbk_nonsense') });
  const otherSecret = `${org.adminKey.slice(0, -1)}${org.adminKey.endsWith('A') ? 'B' : 'A'}`;
  await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(otherSecret) });
  await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer(org.adminKey) });
  await app.inject({ method: 'GET', url: '/api/v1/organizations' });
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: asAdmin })).statusCode, 200);
  const scraped = await scrape(app);
  t.equal(sample(scraped, 'switchboard_api_key_auth_failures_total', { reason: 'missing_credentials' }), 1);
  t.equal(sample(scraped, 'switchboard_api_key_auth_failures_total', { reason: 'malformed_key' }), 1);
  t.equal(sample(scraped, 'switchboard_api_key_auth_failures_total', { reason: 'invalid_secret' }), 1);
  t.equal(sample(scraped, 'switchboard_admin_auth_failures_total', { reason: 'invalid_admin_token' }), 1);
  t.equal(sample(scraped, 'switchboard_admin_auth_failures_total', { reason: 'missing_credentials' }), 1);
  t.notMatch(scraped.text, org.adminKey);
});

t.test('a signed delivery counts accepted, its replay duplicate, and bad ones rejected by reason', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  const body = '{"hello":"metrics"}';
  const send = async (headers: Record<string, string>, url = hook.url) => app.inject({ method: 'POST', url, headers, payload: body, remoteAddress: randomIpv6() });
  const signed = await githubHeaders(hook.secret, body, { 'x-github-delivery': 'delivery-metrics-1' });

  t.equal((await send(signed)).statusCode, 202);
  let scraped = await scrape(app);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'accepted' }), 1);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'duplicate' }), 0);

  t.equal((await send(signed)).statusCode, 200, 'the replay is a duplicate');
  t.equal((await send(await githubHeaders('wrong-secret', body))).statusCode, 403);
  t.equal((await send({ 'content-type': 'application/json' })).statusCode, 403);
  t.equal((await send(signed, '/api/v1/hooks/0190a3f0-0000-7000-8000-000000000000')).statusCode, 404);
  t.equal((await send({ ...(await githubHeaders(hook.secret, '{broken')), 'content-type': 'application/json' })).statusCode, 403, 'signed over other bytes');

  scraped = await scrape(app);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'accepted' }), 1);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'duplicate' }), 1);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'rejected', reason: 'signature_invalid' }), 2);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'rejected', reason: 'signature_missing' }), 1);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'rejected', reason: 'not_found' }), 1);
  t.equal(sample(scraped, SIGNATURES, { reason: 'signature_invalid' }), 2);
  t.equal(sample(scraped, SIGNATURES, { reason: 'signature_missing' }), 1);
  t.equal(sample(scraped, SIGNATURES, { reason: 'timestamp_out_of_tolerance' }), 0);
  t.notMatch(scraped.text, hook.id, 'no webhook id in a label');
  t.notMatch(scraped.text, 'delivery-metrics-1', 'no delivery id in a label');
});

t.test('a 429 counts against its limiter, and an ingest 429 is a rejected delivery', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_WEBHOOK_MAX: '1', RATE_LIMIT_AGENT_MAX: '1' } });
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  const ip = randomIpv6();
  const body = '{}';
  const ingest = async () => app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body, remoteAddress: ip });
  t.equal((await ingest()).statusCode, 202);
  const limited = await ingest();
  t.equal(limited.statusCode, 429);
  t.equal(limited.json().limiter, 'webhook');

  const agent = await createAgent(app, org.adminKey);
  const heartbeat = () => app.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token), payload: {}, remoteAddress: ip });
  t.equal((await heartbeat()).statusCode, 200);
  t.equal((await heartbeat()).statusCode, 429);
  t.equal((await heartbeat()).statusCode, 429);

  const scraped = await scrape(app);
  t.equal(sample(scraped, REJECTIONS, { limiter: 'webhook' }), 1);
  t.equal(sample(scraped, REJECTIONS, { limiter: 'agent' }), 2);
  t.equal(sample(scraped, REJECTIONS, { limiter: 'agentAuth' }), 0);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'rejected', reason: 'rate_limited' }), 1);
  t.equal(sample(scraped, DELIVERIES, { outcome: 'accepted' }), 1);
});

t.test('the agent-auth limiter counts its rejections too', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_AGENT_AUTH_MAX: '2' } });
  const ip = randomIpv6();
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent('bad'), remoteAddress: ip })).statusCode);
  t.same(statuses, [401, 401, 429, 429]);
  t.equal(sample(await scrape(app), REJECTIONS, { limiter: 'agentAuth' }), 2);
});

t.test('an unreachable Redis at start-up is counted as a fallback, and the limits report per-process', async (t) => {
  const app = await build(t, { env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  const scraped = await scrape(app);
  t.equal(sample(scraped, 'switchboard_rate_limit_fallbacks_total'), 1);
  t.equal(sample(scraped, 'switchboard_rate_limit_shared'), 0);
});

t.test('with Redis answering the limits report shared, and no fallback', { skip: TEST_REDIS_URL ? false : 'needs TEST_REDIS_URL' }, async (t) => {
  const app = await build(t, { env: { REDIS_URL: TEST_REDIS_URL } });
  const ip = randomIpv6();
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent('bad'), remoteAddress: ip })).statusCode, 401);
  const scraped = await scrape(app);
  t.equal(sample(scraped, 'switchboard_rate_limit_shared'), 1);
  t.equal(sample(scraped, 'switchboard_rate_limit_fallbacks_total'), 0);
});
