import Fastify from 'fastify';
import t from 'tap';
import { shutdown } from '../../src/lifecycle.js';
import httpPlugin from '../../src/plugins/http.js';
import { build, testConfig, TEST_DATABASE_URL, sleep } from '../helper.js';
import { proxiedUrl, startTcpProxy } from '../support/tcp-proxy.js';

t.test('shutdown lets an in-flight request finish before closing', async (t) => {
  const app = Fastify();
  await app.register(httpPlugin, { config: testConfig() });
  let entered!: () => void;
  const inFlight = new Promise<void>((resolve) => (entered = resolve));
  app.get('/work', async () => {
    entered();
    await sleep(300);
    return { done: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const pending = fetch(`http://127.0.0.1:${port}/work`);
  await inFlight;
  const outcome = shutdown(app, 5000);
  const response = await pending;
  t.equal(response.status, 200);
  t.same(await response.json(), { done: true });
  t.equal(await outcome, 'closed');
  await t.rejects(fetch(`http://127.0.0.1:${port}/work`), 'no longer accepting');
});

t.test('shutdown gives up after its timeout', async (t) => {
  const app = Fastify();
  let entered!: () => void;
  const inFlight = new Promise<void>((resolve) => (entered = resolve));
  app.get('/stuck', () => {
    entered();
    return new Promise(() => {});
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  void fetch(`http://127.0.0.1:${port}/stuck`).catch(() => {});
  await inFlight;
  t.equal(await shutdown(app, 200), 'timeout');
  app.server.closeAllConnections();
});

t.test('the real app finishes an in-flight /readyz on a slow database before it closes', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a Postgres server behind a slow proxy)' }, async (t) => {
  const target = new URL(TEST_DATABASE_URL!);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const app = await build(t, { database: 'own', env: { DATABASE_URL: proxiedUrl(TEST_DATABASE_URL!, proxy) } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  proxy.setDelay(600);
  const pending = fetch(`http://127.0.0.1:${port}/readyz`);
  await sleep(250);
  const outcome = shutdown(app, 5000);
  const response = await pending;
  t.equal(response.status, 200);
  t.equal(((await response.json()) as { status: string }).status, 'ready');
  t.equal(await outcome, 'closed');
});
