// Who may read GET /metrics: with METRICS_TOKEN only its bearer; without it only direct loopback
// clients (the TCP peer, never X-Forwarded-For).
import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';
import { asAdmin, bearer, build, captureLogs, createOrg } from '../helper.js';
import { parseExposition } from '../support/prometheus.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdefghijklmnop';

t.test('without METRICS_TOKEN a loopback client reads the metrics as Prometheus text', async (t) => {
  const app = await build(t);
  for (const remoteAddress of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
    const res = await app.inject({ method: 'GET', url: '/metrics', remoteAddress });
    t.equal(res.statusCode, 200, remoteAddress);
    t.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4; charset=utf-8/);
    t.equal(res.headers['cache-control'], 'no-store');
    t.same(parseExposition(res.body).malformed, []);
  }
});

t.test('without METRICS_TOKEN any other peer gets 403 metrics_loopback_only, whatever it sends', async (t) => {
  const logs = captureLogs();
  const app = await build(t, { env: { LOG_LEVEL: 'info' }, logDestination: logs.destination });
  const org = await createOrg(app);
  const attempts = [
    { remoteAddress: '203.0.113.7', headers: {} },
    { remoteAddress: '2001:db8::7', headers: {} },
    { remoteAddress: '10.1.2.3', headers: bearer(org.adminKey) },
    { remoteAddress: '198.51.100.9', headers: asAdmin },
    { remoteAddress: '::ffff:10.0.0.1', headers: {} },
  ];
  for (const { remoteAddress, headers } of attempts) {
    const res = await app.inject({ method: 'GET', url: '/metrics', remoteAddress, headers });
    t.equal(res.statusCode, 403, remoteAddress);
    t.match(String(res.headers['content-type']), 'application/problem+json');
    t.equal(res.json().code, 'metrics_loopback_only');
    t.notMatch(res.body, 'switchboard_');
  }
  t.equal((await app.inject({ method: 'HEAD', url: '/metrics', remoteAddress: '203.0.113.7' })).statusCode, 403, 'HEAD is guarded too');
  t.ok(logs.lines().some((line) => line.msg === 'metrics scrape refused: not a loopback client and METRICS_TOKEN is not set' && line.peer === '203.0.113.7'));
  t.notMatch(logs.text(), org.adminKey, 'a presented key is never logged');
});

t.test('a request that came through a proxy is refused even from loopback, and X-Forwarded-For cannot claim loopback', async (t) => {
  const app = await build(t, { env: { TRUST_PROXY: 'loopback,203.0.113.0/24' } });
  const viaLocalProxy = await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '198.51.100.4' } });
  t.equal(viaLocalProxy.statusCode, 403);
  t.equal(viaLocalProxy.json().code, 'metrics_loopback_only');
  for (const headers of [{ forwarded: 'for=198.51.100.4' }, { 'x-real-ip': '198.51.100.4' }]) {
    t.equal((await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1', headers })).statusCode, 403, JSON.stringify(headers));
  }
  const forged = await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '203.0.113.8', headers: { 'x-forwarded-for': '127.0.0.1' } });
  t.equal(forged.statusCode, 403, 'a trusted proxy forwarding for 127.0.0.1 is still not a loopback peer');
});

t.test('with METRICS_TOKEN only its bearer reads the metrics, from any address', async (t) => {
  const logs = captureLogs();
  const app = await build(t, { env: { METRICS_TOKEN, LOG_LEVEL: 'info' }, logDestination: logs.destination });
  const wrong = `${METRICS_TOKEN.slice(0, -1)}X`;
  for (const headers of [{}, bearer(wrong), bearer(`${METRICS_TOKEN}extra`), { authorization: METRICS_TOKEN }, asAdmin]) {
    const res = await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1', headers });
    t.equal(res.statusCode, 401, JSON.stringify(headers).slice(0, 40));
    t.equal(res.json().code, 'unauthorized');
    t.equal(res.headers['www-authenticate'], 'Bearer realm="switchboard-metrics"');
    t.notMatch(res.body, 'switchboard_');
  }
  for (const remoteAddress of ['127.0.0.1', '203.0.113.7']) {
    const res = await app.inject({ method: 'GET', url: '/metrics', remoteAddress, headers: bearer(METRICS_TOKEN) });
    t.equal(res.statusCode, 200, remoteAddress);
    t.notMatch(res.body, METRICS_TOKEN, 'the token is not in the exposition');
  }
  t.notMatch(logs.text(), wrong, 'a presented token is never logged');
  t.notMatch(logs.text(), METRICS_TOKEN);
});

t.test('over real HTTP: a scraper on 127.0.0.1 is served; with a token, only with it', async (t) => {
  const open = await build(t);
  await open.listen({ host: '127.0.0.1', port: 0 });
  const { port } = open.server.address() as { port: number };
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.equal(res.status, 200);
  t.match(await res.text(), '# TYPE switchboard_http_request_duration_seconds histogram');

  const guarded = await build(t, { env: { METRICS_TOKEN } });
  await guarded.listen({ host: '127.0.0.1', port: 0 });
  const guardedPort = (guarded.server.address() as { port: number }).port;
  const refused = await fetch(`http://127.0.0.1:${guardedPort}/metrics`);
  t.equal(refused.status, 401);
  t.equal(((await refused.json()) as { code: string }).code, 'unauthorized');
  const allowed = await fetch(`http://127.0.0.1:${guardedPort}/metrics`, { headers: bearer(METRICS_TOKEN) });
  t.equal(allowed.status, 200);
  await allowed.text();
});

t.test('METRICS_TOKEN must be at least 32 characters', async (t) => {
  const error = t.throws(() => loadConfig({ METRICS_TOKEN: 'short' })) as ConfigError;
  t.type(error, ConfigError);
  t.match(error.message, 'METRICS_TOKEN: must be at least 32 characters');
  t.equal(loadConfig({ METRICS_TOKEN: '' }).metricsToken, undefined, 'blank means unset');
  t.equal(loadConfig({ METRICS_TOKEN }).metricsToken, METRICS_TOKEN);
});
