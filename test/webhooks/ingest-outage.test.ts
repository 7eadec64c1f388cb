import t from 'tap';
import { build, createOrg, createWebhook, TEST_DATABASE_URL } from '../helper.js';
import { githubHeaders } from '../support/signing.js';
import { proxiedUrl, startTcpProxy } from '../support/tcp-proxy.js';

// The embedded database lives in-process and cannot become unreachable while the server runs;
// this needs a Postgres server the test can cut off.
t.test('ingest answers 503 unavailable with Retry-After while Postgres is unreachable, never 202', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL' }, async (t) => {
  const target = new URL(TEST_DATABASE_URL!);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const app = await build(t, { database: 'own', env: { DATABASE_URL: proxiedUrl(TEST_DATABASE_URL!, proxy), DATABASE_CONNECT_TIMEOUT_MS: '1000' } });
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  const body = '{"outage":true}';
  const headers = await githubHeaders(hook.secret, body);
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers, payload: body })).statusCode, 202);
  await proxy.cut();
  const down = await app.inject({ method: 'POST', url: hook.url, headers, payload: body });
  t.equal(down.statusCode, 503);
  t.equal(down.json().code, 'unavailable');
  t.equal(down.headers['retry-after'], '5');
  await proxy.restore();
  let status = 0;
  for (let i = 0; i < 50 && status !== 202; i++) {
    status = (await app.inject({ method: 'POST', url: hook.url, headers, payload: body })).statusCode;
    if (status !== 202) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(status, 202, 'accepted again once the database is back');
});

t.test('a database that accepts but does not answer: ingest answers 503 before REQUEST_TIMEOUT_MS, not when it answers', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL' }, async (t) => {
  const target = new URL(TEST_DATABASE_URL!);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const app = await build(t, { database: 'own', env: { DATABASE_URL: proxiedUrl(TEST_DATABASE_URL!, proxy), REQUEST_TIMEOUT_MS: '1500' } });
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  const body = '{"stalled":true}';
  const headers = await githubHeaders(hook.secret, body);
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers, payload: body })).statusCode, 202);
  proxy.setDelay(4000);
  const started = Date.now();
  const stalled = await app.inject({ method: 'POST', url: hook.url, headers, payload: body });
  const waited = Date.now() - started;
  t.equal(stalled.statusCode, 503);
  t.equal(stalled.json().code, 'unavailable');
  t.ok(stalled.headers['retry-after']);
  t.ok(waited >= 900 && waited < 1500, `answered after ${waited} ms: REQUEST_TIMEOUT_MS less the margin to answer`);
  proxy.setDelay(0);
});
