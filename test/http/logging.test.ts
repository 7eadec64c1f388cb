import t from 'tap';
import { build, captureLogs } from '../helper.js';

const TOKEN = 'sb_live_0123456789abcdefSECRETSECRETSECRET';

t.test('a token in an Authorization header never appears in the log, even at trace level', async (t) => {
  const logs = captureLogs();
  const app = await build(t, { env: { LOG_LEVEL: 'trace', REQUEST_LOG_INCLUDE_HEALTH: 'true' }, logDestination: logs.destination });
  await app.inject({ method: 'GET', url: '/healthz', headers: { authorization: `Bearer ${TOKEN}`, 'x-agent-token': TOKEN } });
  await app.inject({ method: 'GET', url: `/nope?token=${TOKEN}&code=${TOKEN}`, headers: { authorization: `Bearer ${TOKEN}` } });
  app.log.info({ token: TOKEN, nested: { client_secret: TOKEN, list: [{ password: TOKEN }] } }, 'object with secrets');
  t.ok(logs.lines().length >= 3, 'something was logged');
  t.notMatch(logs.text(), TOKEN);
  t.notMatch(logs.text(), 'SECRETSECRET');
  t.match(logs.text(), '[redacted]');
});

t.test('Switchboard secrets put in a URL are redacted by their shape, under any parameter name or in the path', async (t) => {
  const logs = captureLogs();
  const app = await build(t, { env: { LOG_LEVEL: 'info' }, logDestination: logs.destination });
  const apiKey = `sbk_0123456789abcdef_${'A'.repeat(43)}`;
  const agentToken = `sba_fedcba9876543210_${'b'.repeat(42)}-`;
  const webhookSecret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  await app.inject({ method: 'GET', url: `/api/v1/agents?q=${apiKey}&x=${encodeURIComponent(webhookSecret)}` });
  await app.inject({ method: 'GET', url: `/api/v1/${agentToken}` });
  await app.inject({ method: 'GET', url: `/api/v1/agents?auth=plain-secret-1&bearer=plain-secret-2&session=plain-secret-3` });
  // Percent-encoded, after an escape's last digit, nested in another parameter, or cut short.
  await app.inject({ method: 'GET', url: `/api/v1/agents?q=Bearer%20${agentToken}&next=${encodeURIComponent(`/cb?key=${apiKey}`)}&t=tok_${apiKey.slice(0, 45)}` });
  const text = logs.text();
  t.ok(logs.lines().length >= 3, 'the requests were logged');
  for (const secret of [apiKey, agentToken, webhookSecret, encodeURIComponent(webhookSecret), 'AAAAAAAAAAAAAAAA', 'bbbbbbbbbbbbbbbb', 'plain-secret']) t.notMatch(text, secret);
  t.match(text, 'sbk_[redacted]', 'the kind of secret stays readable');
  t.match(text, 'sba_[redacted]');
});

t.test('health probes are left out of request logs unless REQUEST_LOG_INCLUDE_HEALTH=true', async (t) => {
  const quiet = captureLogs();
  const app = await build(t, { env: { LOG_LEVEL: 'info' }, logDestination: quiet.destination });
  await app.inject({ method: 'GET', url: '/healthz' });
  await app.inject({ method: 'GET', url: '/readyz' });
  await app.inject({ method: 'GET', url: '/elsewhere' });
  const routes = quiet.lines().filter((line) => line.msg === 'request completed').map((line) => line.route);
  t.same(routes, ['(unmatched)']);

  const loud = captureLogs();
  const app2 = await build(t, { env: { LOG_LEVEL: 'info', REQUEST_LOG_INCLUDE_HEALTH: 'true' }, logDestination: loud.destination });
  await app2.inject({ method: 'GET', url: '/healthz' });
  const line = loud.lines().find((entry) => entry.msg === 'request completed');
  t.match(line, { method: 'GET', route: '/healthz', status: 200, level: 'info' });
  t.type(line?.duration_ms, 'number');
  t.type(line?.request_id, 'string');
});

t.test('the client IP comes from X-Forwarded-For only when the peer is a trusted proxy', async (t) => {
  const env = { LOG_LEVEL: 'info', REQUEST_LOG_INCLUDE_HEALTH: 'true' };
  const trusted = captureLogs();
  const behindProxy = await build(t, { env: { ...env, TRUST_PROXY: '127.0.0.1,10.0.0.0/8' }, logDestination: trusted.destination });
  await behindProxy.inject({ method: 'GET', url: '/healthz', remoteAddress: '10.1.2.3', headers: { 'x-forwarded-for': '203.0.113.9' } });
  t.equal(trusted.lines().at(-1)?.remote_address, '203.0.113.9');

  const direct = captureLogs();
  const exposed = await build(t, { env, logDestination: direct.destination });
  await exposed.inject({ method: 'GET', url: '/healthz', remoteAddress: '198.51.100.7', headers: { 'x-forwarded-for': '203.0.113.9' } });
  t.equal(direct.lines().at(-1)?.remote_address, '198.51.100.7', 'a forged header from an untrusted peer is ignored');
});
