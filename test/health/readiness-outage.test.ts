import t from 'tap';
import { build, TEST_DATABASE_URL, sleep } from '../helper.js';
import { proxiedUrl, startTcpProxy } from '../support/tcp-proxy.js';

// The embedded database runs inside the process and cannot go away on its own; the in-process
// variant (closing it) is in health.test.ts. Here a real Postgres server goes away and returns.
if (!TEST_DATABASE_URL) {
  t.comment('skipped: needs TEST_DATABASE_URL (a real Postgres server the test can cut off)');
} else {
  const databaseUrl = TEST_DATABASE_URL;
  const target = new URL(databaseUrl);

  t.test('/readyz flips to 503 while Postgres is unreachable and back to 200 without a restart', async (t) => {
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    t.teardown(() => proxy.close());
    const app = await build(t, {
      database: 'own',
      env: { DATABASE_URL: proxiedUrl(databaseUrl, proxy), READINESS_TIMEOUT_MS: '1000', DATABASE_CONNECT_TIMEOUT_MS: '1000' },
    });
    t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'ready at first');

    await proxy.cut();
    const down = await app.inject({ method: 'GET', url: '/readyz' });
    t.equal(down.statusCode, 503, 'not ready while the database is gone');
    t.equal(down.json().checks.database.status, 'fail');
    t.notMatch(down.body, /postgres:\/\/|127\.0\.0\.1|ECONNREFUSED/);
    t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still alive');

    await proxy.restore();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await app.inject({ method: 'GET', url: '/readyz' })).statusCode;
      if (status !== 200) await sleep(100);
    }
    t.equal(status, 200, 'ready again once the database is back');
  });

  t.test('/readyz answers 503 timeout when the database is slower than READINESS_TIMEOUT_MS', async (t) => {
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    t.teardown(() => proxy.close());
    const app = await build(t, { database: 'own', env: { DATABASE_URL: proxiedUrl(databaseUrl, proxy), READINESS_TIMEOUT_MS: '200' } });
    proxy.setDelay(500);
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    t.equal(res.statusCode, 503);
    t.equal(res.json().checks.database.error, 'timeout');
  });
}
