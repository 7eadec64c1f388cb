// The built server killed or stopped in the middle of sustained webhook ingest: no delivery that
// got a 202 is lost (SIGKILL), and SIGTERM lets requests already in flight finish before exit 0.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADMIN_TOKEN, TEST_DATABASE_URL, TOKEN_ENCRYPTION_KEY, sleep } from '../helper.js';
import { createFixture, lostDeliveries, startIngest, storedBodies, unaccountedDeliveries } from '../support/ingest-load.js';
import { startServer } from '../support/process.js';
import { githubHeaders } from '../support/signing.js';

const baseEnv = {
  NODE_ENV: 'test',
  ADMIN_TOKEN,
  TOKEN_ENCRYPTION_KEY,
  LOG_LEVEL: 'warn',
  RATE_LIMIT_WEBHOOK_MAX: '1000000',
};

/** A signed delivery sent in two halves: the server has the request (headers, half the body) before the rest arrives. */
async function slowDelivery(base: string, hook: { path: string; secret: string }, body: string) {
  const headers = await githubHeaders(hook.secret, body);
  const url = new URL(hook.path, base);
  let finish!: () => void;
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    const half = Math.floor(body.length / 2);
    req.write(body.slice(0, half));
    finish = () => req.end(body.slice(half));
  });
  return { response, finish: () => finish() };
}

t.test('SIGKILL during ingest loses no acknowledged delivery; the restarted server serves on', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (the killed server must leave its data in a Postgres server)' }, async (t) => {
  const env = { ...baseEnv, DATABASE_URL: TEST_DATABASE_URL };
  const first = await startServer(env);
  t.teardown(() => first.stop('SIGKILL'));
  const fixture = await createFixture(first.url);
  const load = startIngest(first.url, fixture.hook, { concurrency: 6 });
  await load.waitFor(80);
  first.child.kill('SIGKILL');
  t.equal(await first.exited, null, 'killed');
  await load.waitFor(6);
  await load.stop();

  const statuses = new Set(load.outcomes.map((outcome) => outcome.status));
  t.same([...statuses].filter((status) => status !== 202 && status !== 'error'), [], 'answers were 202 until the kill, then connection errors');
  const acknowledged = load.acknowledged();
  t.ok(acknowledged.size >= 70, `deliveries acknowledged before the kill: ${acknowledged.size}`);

  const second = await startServer(env);
  t.teardown(() => second.stop());
  const stored = await storedBodies({ databaseUrl: TEST_DATABASE_URL }, fixture.hook.id);
  t.same(lostDeliveries(acknowledged, stored), [], 'every acknowledged delivery is stored with its exact body');
  t.equal(acknowledged.size, load.outcomes.filter((outcome) => outcome.status === 202).length, 'every 202 named a delivery id of its own');
  t.same(unaccountedDeliveries(load.outcomes, stored), [], 'every stored row is one the sender sent, once, under the id it was told');
  const again = startIngest(second.url, fixture.hook, { concurrency: 1 });
  await again.waitFor(3);
  await again.stop();
  t.same([...new Set(again.outcomes.map((outcome) => outcome.status))], [202], 'the restarted server accepts deliveries for the same webhook');
});

t.test('SIGTERM during ingest: requests in flight complete, nothing acknowledged is lost, exit code 0', async (t) => {
  let env: Record<string, string | undefined>;
  let where: { databaseUrl?: string; dataDir?: string };
  if (TEST_DATABASE_URL) {
    env = { ...baseEnv, DATABASE_URL: TEST_DATABASE_URL };
    where = { databaseUrl: TEST_DATABASE_URL };
  } else {
    const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-data-'));
    t.teardown(() => rm(dataDir, { recursive: true, force: true }));
    env = { ...baseEnv, DATA_DIR: dataDir };
    where = { dataDir };
  }
  const server = await startServer(env);
  t.teardown(() => server.stop('SIGKILL'));
  const fixture = await createFixture(server.url);
  const load = startIngest(server.url, fixture.hook, { concurrency: 3 });
  await load.waitFor(30);

  const bodies = [0, 1, 2].map((i) => JSON.stringify({ in_flight: i, padding: 'p'.repeat(2000) }));
  const inFlight = await Promise.all(bodies.map((body) => slowDelivery(server.url, fixture.hook, body)));
  // The half-sent requests reach the server (one loopback write) well within this.
  await sleep(300);
  server.child.kill('SIGTERM');
  await sleep(300);
  for (const delivery of inFlight) delivery.finish();
  const answers = await Promise.all(inFlight.map((delivery) => delivery.response));
  t.same(answers.map((answer) => answer.status), [202, 202, 202], 'the requests in flight at SIGTERM were answered 202');
  t.equal(await server.exited, 0, 'exit code 0 once drained');
  await load.stop();

  const statuses = new Set(load.outcomes.map((outcome) => outcome.status));
  t.same([...statuses].filter((status) => status !== 202 && status !== 'error'), [], 'the sustained load saw 202s, then refused connections, never a 5xx');
  const stored = await storedBodies(where, fixture.hook.id);
  const acknowledged = load.acknowledged();
  answers.forEach((answer, i) => {
    acknowledged.set((JSON.parse(answer.body) as { delivery_id: string }).delivery_id, createHash('sha256').update(bodies[i]!).digest('hex'));
  });
  t.ok(acknowledged.size >= 33, `deliveries acknowledged: ${acknowledged.size}`);
  t.same(lostDeliveries(acknowledged, stored), [], 'every acknowledged delivery is stored with its exact body');
});
