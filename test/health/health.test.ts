import t from 'tap';
import { openDatabase } from '../../src/db/client.js';
import { build } from '../helper.js';

t.test('GET /healthz answers 200 ok without touching dependencies', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ok' });
});

t.test('GET /readyz answers 200 with a database round-trip and every migration applied', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.equal(body.status, 'ready');
  t.equal(body.checks.database.status, 'ok');
  t.type(body.checks.database.latency_ms, 'number');
  t.equal(body.checks.migrations.status, 'ok');
  t.equal(body.checks.migrations.pending, 0);
  t.ok(body.checks.migrations.applied >= 1);
});

t.test('GET /readyz answers 503 naming the check while migrations are pending', async (t) => {
  // A fresh embedded database that was never migrated (MIGRATE_ON_START=false).
  const database = await openDatabase({ databaseUrl: undefined, poolMax: 1, connectTimeoutMs: 1000, dataDir: 'memory://' });
  t.teardown(() => database.close());
  const app = await build(t, { database, env: { MIGRATE_ON_START: 'false' } });
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.statusCode, 503);
  const body = res.json();
  t.equal(body.status, 'not_ready');
  t.equal(body.checks.database.status, 'ok');
  t.equal(body.checks.migrations.status, 'fail');
  t.equal(body.checks.migrations.error, 'migrations_pending');
  t.ok(body.checks.migrations.pending >= 1);
});

t.test('while the database is down /healthz stays 200 and /readyz is 503 without internals', async (t) => {
  const app = await build(t, { database: 'own', env: { DATA_DIR: 'memory://' } });
  // The embedded database lives in-process; closing it is how it "goes away". The Postgres
  // variant (goes away and comes back) is in readiness-outage.test.ts.
  await app.database.close();
  const live = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(live.statusCode, 200);
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 503);
  const body = ready.json();
  t.equal(body.status, 'not_ready');
  t.equal(body.checks.database.status, 'fail');
  t.equal(body.checks.database.error, 'unreachable');
  t.notMatch(ready.body, /postgres:\/\/|password|Error:|at .*\.js/);
});
