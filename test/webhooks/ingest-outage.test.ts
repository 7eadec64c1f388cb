import t, { type Test } from 'tap';
import { build, createOrg, createWebhook, TEST_DATABASE_URL } from '../helper.js';
import { githubHeaders } from '../support/signing.js';
import { proxiedUrl, startTcpProxy } from '../support/tcp-proxy.js';

/** An app whose database goes through a proxy the test controls, a webhook, and one signed delivery that is accepted. */
async function proxiedIngest(t: Test, env: Record<string, string>) {
  const target = new URL(TEST_DATABASE_URL!);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const app = await build(t, { database: 'own', env: { DATABASE_URL: proxiedUrl(TEST_DATABASE_URL!, proxy), ...env } });
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  const body = JSON.stringify({ test: t.name });
  const headers = await githubHeaders(hook.secret, body);
  const deliver = () => app.inject({ method: 'POST', url: hook.url, headers, payload: body });
  t.equal((await deliver()).statusCode, 202);
  return { proxy, deliver };
}

// The embedded database lives in-process and cannot become unreachable while the server runs;
// this needs a Postgres server the test can cut off.
t.test('ingest answers 503 unavailable with Retry-After while Postgres is unreachable, never 202', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL' }, async (t) => {
  const { proxy, deliver } = await proxiedIngest(t, { DATABASE_CONNECT_TIMEOUT_MS: '1000' });
  await proxy.cut();
  const down = await deliver();
  t.equal(down.statusCode, 503);
  t.equal(down.json().code, 'unavailable');
  t.equal(down.headers['retry-after'], '5');
  await proxy.restore();
  let status = 0;
  for (let i = 0; i < 50 && status !== 202; i++) {
    status = (await deliver()).statusCode;
    if (status !== 202) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(status, 202, 'accepted again once the database is back');
});

t.test('a database that accepts but does not answer: ingest answers 503 before REQUEST_TIMEOUT_MS, not when it answers', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL' }, async (t) => {
  const { proxy, deliver } = await proxiedIngest(t, { REQUEST_TIMEOUT_MS: '1500' });
  proxy.setDelay(4000);
  const started = Date.now();
  const stalled = await deliver();
  const waited = Date.now() - started;
  t.equal(stalled.statusCode, 503);
  t.equal(stalled.json().code, 'unavailable');
  t.ok(stalled.headers['retry-after']);
  // The deadline is 1000 ms (1500 less the margin); the bound above it leaves room for a loaded machine, far below the 4 s stall.
  t.ok(waited >= 900 && waited < 3000, `answered after ${waited} ms, not when the database answered`);
  proxy.setDelay(0);
});
