// Every route answers within REQUEST_TIMEOUT_MS less half a second when the database accepts a
// query and does not answer (plugins/deadline.ts), not only the hot paths with batched queries.
import t from 'tap';
import { bearer, build, createAgent, createOrg, TEST_DATABASE_URL } from '../helper.js';
import { proxiedUrl, startTcpProxy } from '../support/tcp-proxy.js';

// The embedded database lives in-process and cannot stall; this needs a Postgres server behind a proxy.
const needsPostgres = { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a Postgres server the test can slow down)' };

t.test('operator routes answer 503 unavailable with Retry-After when the database stalls, and serve again once it answers', needsPostgres, async (t) => {
  const target = new URL(TEST_DATABASE_URL!);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const app = await build(t, { database: 'own', env: { DATABASE_URL: proxiedUrl(TEST_DATABASE_URL!, proxy), REQUEST_TIMEOUT_MS: '1500' } });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const list = () => app.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(org.adminKey) });
  t.equal((await list()).statusCode, 200);

  proxy.setDelay(4000);
  for (const [name, request] of [
    ['a read', list],
    ['a write', () => app.inject({ method: 'PATCH', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey), payload: { name: 'renamed' } })],
  ] as const) {
    const started = Date.now();
    const res = await request();
    const waited = Date.now() - started;
    t.equal(res.statusCode, 503, name);
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    t.equal(res.json().code, 'unavailable');
    t.equal(res.headers['retry-after'], '5');
    t.notMatch(res.body, /FST_|stack|route '/, 'no framework internals in the answer');
    // The deadline is 1000 ms (1500 less the margin); the upper bound leaves room for a loaded machine, far below the 4 s stall.
    t.ok(waited >= 900 && waited < 3000, `${name} answered after ${waited} ms, not when the database answered`);
  }

  proxy.setDelay(0);
  // The stalled calls finish in the background once their delayed answers arrive; the API serves meanwhile.
  let status = 0;
  for (let i = 0; i < 80 && status !== 200; i++) {
    status = (await list()).statusCode;
    if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(status, 200, 'answers again once the database does');
});
