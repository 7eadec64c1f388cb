// PostgreSQL goes away in the middle of sustained webhook ingest — a clean restart, then a crash —
// and the built server rides it out: no acknowledged delivery lost, 503 + Retry-After (never 500,
// never a hang) while the database is down, /readyz follows, and no restart of the server needed.
// It uses a throwaway cluster of its own, never the shared one.
import t from 'tap';
import { ADMIN_TOKEN, TOKEN_ENCRYPTION_KEY } from '../helper.js';
import { createFixture, lostDeliveries, startIngest, storedBodies, unaccountedDeliveries, type IngestOutcome } from '../support/ingest-load.js';
import { postgresBinDir, startPostgresCluster } from '../support/postgres-cluster.js';
import { startServer } from '../support/process.js';

const REQUEST_TIMEOUT_MS = 3000;

async function readiness(url: string, want: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => ({ status: 0 }))).status;
    if (status === want) return status;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return status;
}

const skip = postgresBinDir() ? false : 'needs the PostgreSQL server binaries (initdb, pg_ctl) to run a throwaway cluster';

t.test('Postgres stopped and crashed during ingest: every 202 is stored, outages answer 503 with Retry-After, the server recovers by itself', { skip }, async (t) => {
  const cluster = (await startPostgresCluster())!;
  t.teardown(() => cluster.destroy());
  const server = await startServer({
    NODE_ENV: 'test',
    DATABASE_URL: cluster.url,
    ADMIN_TOKEN,
    TOKEN_ENCRYPTION_KEY,
    LOG_LEVEL: 'warn',
    REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    DATABASE_CONNECT_TIMEOUT_MS: '1000',
    READINESS_TIMEOUT_MS: '1000',
    RATE_LIMIT_WEBHOOK_MAX: '1000000',
  });
  t.teardown(() => server.stop('SIGKILL'));
  const fixture = await createFixture(server.url);
  const load = startIngest(server.url, fixture.hook, { concurrency: 4, timeoutMs: REQUEST_TIMEOUT_MS + 5000 });

  const t0 = Date.now();
  const marks: string[] = [];
  for (const mode of ['fast', 'immediate'] as const) {
    await load.waitFor(40);
    marks.push(`stop ${mode} ${Date.now() - t0}`);
    await cluster.stop(mode);
    marks.push(`stopped ${Date.now() - t0}`);
    t.equal(await readiness(server.url, 503, 10_000), 503, `/readyz answers 503 while Postgres is down (${mode} stop)`);
    const before = load.outcomes.length;
    await load.waitFor(20);
    t.ok(load.outcomes.slice(before).some((outcome) => outcome.status === 503), `ingest answers 503 during the outage (${mode} stop)`);
    marks.push(`start ${Date.now() - t0}`);
    await cluster.start();
    marks.push(`started ${Date.now() - t0}`);
    t.equal(await readiness(server.url, 200, 30_000), 200, `/readyz back to 200 without restarting the server (${mode} stop)`);
    const recovered = load.outcomes.length;
    await load.waitFor(40);
    t.ok(load.outcomes.slice(recovered).some((outcome) => outcome.status === 202), `ingest accepts deliveries again (${mode} stop)`);
  }
  await load.stop();

  const byStatus = new Map<IngestOutcome['status'], number>();
  for (const outcome of load.outcomes) byStatus.set(outcome.status, (byStatus.get(outcome.status) ?? 0) + 1);
  const errors = load.outcomes.filter((outcome) => outcome.status === 'error').map((outcome) => `${outcome.error} at ${outcome.startedAt - t0} after ${outcome.ms} ms`);
  t.comment(`outcomes: ${JSON.stringify(Object.fromEntries(byStatus))} ${errors.slice(0, 10).join('; ')} ${marks.join(', ')}`);
  t.same([...byStatus.keys()].filter((status) => status !== 202 && status !== 503), [], 'every answer was 202 or 503 (no 500, no dropped connection, no hang)');
  const unavailable = load.outcomes.filter((outcome) => outcome.status === 503);
  t.ok(unavailable.every((outcome) => outcome.retryAfter !== null && Number(outcome.retryAfter) > 0), 'every 503 carries Retry-After');
  t.ok(unavailable.every((outcome) => outcome.contentType?.startsWith('application/problem+json')), 'every 503 is problem+json');
  const slowest = Math.max(...load.outcomes.map((outcome) => outcome.ms));
  t.ok(slowest < REQUEST_TIMEOUT_MS + 1000, `no request took longer than REQUEST_TIMEOUT_MS (slowest ${slowest} ms)`);

  const acknowledged = load.acknowledged();
  const stored = await storedBodies({ databaseUrl: cluster.url }, fixture.hook.id);
  t.ok(acknowledged.size > 60, `many deliveries were acknowledged (${acknowledged.size})`);
  t.same(lostDeliveries(acknowledged, stored), [], 'every acknowledged delivery is stored with the exact body the sender sent');
  const answered202 = load.outcomes.filter((outcome) => outcome.status === 202).length;
  t.equal(acknowledged.size, answered202, 'every 202 named a delivery id of its own');
  // Stored rows: the acknowledged ones, plus some answered 503 whose commit the outage hid (the
  // sender retries those, and the delivery id makes the retry a duplicate).
  t.same(unaccountedDeliveries(load.outcomes, stored), [], 'every stored row is one the sender sent, once, under the id it was told');
  const unacknowledged = stored.size - acknowledged.size;
  t.ok(unacknowledged >= 0 && unacknowledged <= unavailable.length, `count matches: ${stored.size} stored = ${acknowledged.size} acknowledged + ${unacknowledged} of ${unavailable.length} answered 503`);
});
