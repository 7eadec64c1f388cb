// Several instances on one Postgres and one Redis behave as one service: per-IP limits hold across
// them, an OAuth state is consumed once whichever instance the browser lands on, a revoked API key
// is refused everywhere at once, a lease is never handed out twice, and maintenance running on
// every instance at once removes each row once. Without Redis, limits are per instance (documented).
import { readFile } from 'node:fs/promises';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { openDatabase, rowsOf } from '../../src/db/client.js';
import { ADMIN_TOKEN, build, createOrg, createWebhook, isolatedDatabaseEnv, randomIpv6, TEST_DATABASE_URL, TEST_REDIS_URL, TOKEN_ENCRYPTION_KEY } from '../helper.js';
import { startFakeGoogle } from '../support/fake-google.js';
import { api, createFixture } from '../support/ingest-load.js';
import { startServer, type ServerProcess } from '../support/process.js';
import { githubHeaders } from '../support/signing.js';

const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';
const bad = `sba_0123456789abcdef_${'x'.repeat(43)}`;

const serverEnv = {
  NODE_ENV: 'test',
  DATABASE_URL: TEST_DATABASE_URL,
  ADMIN_TOKEN,
  TOKEN_ENCRYPTION_KEY,
  LOG_LEVEL: 'warn',
  // The test client is the "load balancer": both instances take the client IP from X-Forwarded-For.
  TRUST_PROXY: '127.0.0.1',
  // The same limit as the webhook one, so both are "the 61st request gets 429".
  RATE_LIMIT_AGENT_AUTH_MAX: '60',
};

async function ingest(server: ServerProcess, hook: { path: string; secret: string }, ip: string, body = JSON.stringify({ n: Math.random() })) {
  const headers = await githubHeaders(hook.secret, body);
  return (await fetch(`${server.url}${hook.path}`, { method: 'POST', headers: { ...headers, 'x-forwarded-for': ip }, body })).status;
}

async function agentAuth(server: ServerProcess, ip: string) {
  return (await fetch(`${server.url}/api/v1/agent/auth`, { method: 'POST', headers: { 'x-agent-token': bad, 'x-forwarded-for': ip } })).status;
}

t.test('two server processes on one Postgres and one Redis', { skip: TEST_DATABASE_URL && TEST_REDIS_URL ? false : 'needs TEST_DATABASE_URL and TEST_REDIS_URL' }, async (t) => {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const env = { ...serverEnv, REDIS_URL: TEST_REDIS_URL, ...google.env };
  const [one, two] = await Promise.all([startServer(env), startServer(env)]);
  t.teardown(() => Promise.all([one.stop(), two.stop()]));
  const fixture = await createFixture(one.url);

  t.test('the per-IP webhook limit holds across both: the 61st request, spread over both, gets 429', async (t) => {
    const ip = randomIpv6();
    const statuses = [];
    for (let i = 0; i < 60; i++) statuses.push(await ingest(i % 2 ? one : two, fixture.hook, ip));
    t.same([...new Set(statuses)], [202], '60 deliveries accepted');
    t.equal(await ingest(one, fixture.hook, ip), 429, 'the 61st on one instance is refused');
    t.equal(await ingest(two, fixture.hook, ip), 429, 'and on the other');
    t.equal(await ingest(two, fixture.hook, randomIpv6()), 202, 'another client IP is unaffected');
  });

  t.test('the per-IP agent-auth limit holds across both: the 61st attempt gets 429', async (t) => {
    const ip = randomIpv6();
    const statuses = [];
    for (let i = 0; i < 60; i++) statuses.push(await agentAuth(i % 2 ? one : two, ip));
    t.same([...new Set(statuses)], [401], '60 failed attempts answered 401');
    t.equal(await agentAuth(two, ip), 429, 'the 61st on one instance is refused');
    t.equal(await agentAuth(one, ip), 429, 'and on the other');
  });

  t.test('an OAuth state created through one instance is consumed through the other exactly once', async (t) => {
    const consentThrough = async (server: ServerProcess) => {
      const started = await api(server.url, 'GET', '/api/v1/oauth/google/start?redirect=false', fixture.adminKey);
      t.equal(started.status, 200, 'started');
      return google.consent(started.json.authorization_url).replace('http://127.0.0.1:8080', '');
    };
    const land = async (server: ServerProcess, callback: string) => {
      const res = await fetch(`${server.url}${callback}`, { redirect: 'manual' });
      return `${res.status} ${res.headers.get('x-error-code') ?? ''}`.trim();
    };
    // Created through the first, consumed through the second alone: a state kept by the instance
    // that created it would not be found there.
    const first = await consentThrough(one);
    t.equal(await land(two, first), '200', 'the other instance completes the connection');
    t.equal(await land(one, first), '400 invalid_state', 'a replay through the first instance is refused');
    t.equal(await land(two, first), '400 invalid_state', 'and through the second');
    t.equal((await api(one.url, 'GET', '/api/v1/oauth/status', fixture.adminKey)).json.google.state, 'connected', 'both instances see the connection');

    // The browser (or an attacker replaying the link) lands on both instances at once.
    const second = await consentThrough(two);
    const outcomes = await Promise.all([one, two].map((server) => land(server, second)));
    // The codes are in the message: should this ever fail, it says which refusal each one got.
    t.same([...outcomes].sort(), ['200', '400 invalid_state'], `one callback connects, the other is refused (got ${outcomes.join(', ')})`);
    t.equal(await land(one, second), '400 invalid_state', 'and it stays used');
  });

  t.test('an API key revoked through one instance is refused by the other on the next request', async (t) => {
    const created = await api(one.url, 'POST', '/api/v1/api-keys', fixture.adminKey, { name: 'short-lived', role: 'read_only' });
    t.equal(created.status, 201, 'created through the first instance');
    const key = created.json.api_key.key as string;
    t.equal((await api(two.url, 'GET', '/api/v1/organization', key)).status, 200, 'works on the other instance');
    t.equal((await api(one.url, 'DELETE', `/api/v1/api-keys/${created.json.api_key.id}`, fixture.adminKey)).status, 204, 'revoked through the first instance');
    const refused = await api(two.url, 'GET', '/api/v1/organization', key);
    t.equal(refused.status, 401, 'refused by the other instance at once');
    t.equal(refused.json.code, 'unauthorized', 'as unauthorized');
  });

  t.test('leases are never handed out twice across instances', async (t) => {
    const hook = await api(one.url, 'POST', '/api/v1/webhooks', fixture.adminKey, { name: 'lease-race', agent_id: fixture.agent.id });
    const target = { path: `/api/v1/hooks/${hook.json.webhook.id}`, secret: hook.json.secret as string };
    const total = 60;
    const accepted = await Promise.all(Array.from({ length: total }, (_, i) => ingest(i % 2 ? one : two, target, randomIpv6(), JSON.stringify({ lease: i }))));
    t.same([...new Set(accepted)], [202], `${total} deliveries ingested through both instances`);
    const leased: string[] = [];
    const worker = async (server: ServerProcess) => {
      for (;;) {
        const res = await fetch(`${server.url}/api/v1/agent/deliveries/lease`, {
          method: 'POST',
          headers: { 'x-agent-token': fixture.agent.token, 'content-type': 'application/json' },
          body: JSON.stringify({ limit: 3, lease_seconds: 300 }),
        });
        if (res.status !== 200) throw new Error(`lease: ${res.status}`);
        const { data } = (await res.json()) as { data: { id: string }[] };
        if (data.length === 0) return;
        leased.push(...data.map((delivery) => delivery.id));
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, i) => worker(i % 2 ? one : two)));
    // The fixture webhook of the earlier tests routes to the same agent: count only this webhook's deliveries.
    const mine = await api(one.url, 'GET', `/api/v1/webhooks/${hook.json.webhook.id}/deliveries?limit=100`, fixture.adminKey);
    const ids = new Set(mine.json.data.map((delivery: { id: string }) => delivery.id));
    const leasedHere = leased.filter((id) => ids.has(id));
    t.equal(leasedHere.length, total, `each of the ${total} deliveries leased once`);
    t.equal(new Set(leased).size, leased.length, 'no delivery leased twice');
  });
});

t.test('maintenance on two instances at once expires each lease and deletes each aged row once, without errors', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (two connection pools on one Postgres)' }, async (t) => {
  // A database of its own, so rows other test files age or lease do not change the counts.
  const env = await isolatedDatabaseEnv(t);
  const a = await build(t, { database: 'own', env });
  const b = await build(t, { database: 'own', env });
  const org = await createOrg(a);
  const hook = await createWebhook(a, org.adminKey);
  const insert = (count: number, age: string, status: string) =>
    a.db.execute(sql`
      insert into webhook_deliveries (id, organization_id, webhook_id, body, size, body_sha256, headers, received_at, status, attempts, lease_expires_at)
      select gen_random_uuid(), ${org.id}, ${hook.id}, '\\x7b7d'::bytea, 2, 'x', '{}'::jsonb, now() - ${age}::interval, ${status}, 1,
             case when ${status} = 'leased' then now() - interval '1 minute' end
        from generate_series(1, ${count})`);
  await insert(2500, '40 days', 'done');
  await insert(300, '1 hour', 'leased');
  await insert(20, '1 hour', 'pending');
  await a.db.execute(sql`
    insert into oauth_states (id, organization_id, api_key_id, state_hash, code_verifier_ciphertext, expires_at)
    select gen_random_uuid(), ${org.id}, ${org.adminKeyId}, md5(random()::text || g), 'x', now() - interval '1 hour' from generate_series(1, 50) g`);

  const [first, second] = await Promise.all([a.runMaintenance(), b.runMaintenance()]);
  t.comment(`instance a: ${JSON.stringify(first)}, instance b: ${JSON.stringify(second)}`);
  t.equal(first.pruned + second.pruned, 2500, 'each aged delivery deleted exactly once');
  t.equal(first.expired + second.expired, 300, 'each expired lease returned exactly once');
  const counts = rowsOf<{ status: string; n: number }>(
    await a.db.execute(sql`select status, count(*)::int as n from webhook_deliveries where webhook_id = ${hook.id} group by status order by status`),
  );
  t.same(counts, [{ status: 'pending', n: 320 }], 'the recent deliveries remain, expired leases back to pending');
  const states = rowsOf<{ n: number }>(await a.db.execute(sql`select count(*)::int as n from oauth_states where organization_id = ${org.id}`));
  t.equal(states[0]?.n, 0, 'expired OAuth states deleted');
});

t.test('maintenance in two server processes on one database deletes each aged row and expires each lease once, and fails on neither', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (two processes on one database)' }, async (t) => {
  const { DATABASE_URL } = await isolatedDatabaseEnv(t, { migrated: true });
  // info: each run that changed something logs its counts; every second, on both.
  const env = { ...serverEnv, DATABASE_URL, LOG_LEVEL: 'info', MAINTENANCE_INTERVAL_S: '1' };
  const [one, two] = await Promise.all([startServer(env), startServer(env)]);
  t.teardown(() => Promise.all([one.stop(), two.stop()]));
  const fixture = await createFixture(one.url);
  const database = await openDatabase({ databaseUrl: DATABASE_URL, dataDir: 'memory://', poolMax: 1, connectTimeoutMs: 5000 });
  t.teardown(() => database.close());
  // Enough for a run to take longer than the interval: both processes' runs then overlap.
  const AGED = 60_000;
  const count = async (where: ReturnType<typeof sql>) =>
    rowsOf<{ n: number }>(await database.db.execute(sql`select count(*)::int as n from webhook_deliveries where webhook_id = ${fixture.hook.id} and ${where}`))[0]!.n;
  await database.db.execute(sql`
    insert into webhook_deliveries (id, organization_id, webhook_id, body, size, body_sha256, headers, received_at, status, attempts, lease_expires_at, leased_by_agent_id)
    select gen_random_uuid(), ${fixture.orgId}, ${fixture.hook.id}, '\\x7b7d'::bytea, 2, 'x', '{}'::jsonb,
           case when g <= ${AGED} then now() - interval '40 days' else now() - interval '1 hour' end,
           case when g <= ${AGED} then 'done' else 'leased' end, 1,
           case when g > ${AGED} then now() - interval '1 minute' end,
           case when g > ${AGED} then ${fixture.agent.id}::uuid end
      from generate_series(1, ${AGED + 300}) g`);

  const deadline = Date.now() + 60_000;
  while ((await count(sql`(status = 'leased' or received_at < now() - interval '30 days')`)) > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.equal(await count(sql`received_at < now() - interval '30 days'`), 0, 'every aged delivery is gone');
  t.equal(await count(sql`status = 'pending'`), 300, 'every lapsed lease is back to pending');

  const runs = [one, two].map((server) =>
    server
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"maintenance"'))
      .map((line) => JSON.parse(line) as { expired_leases: number; pruned_deliveries: number }),
  );
  const total = (key: 'expired_leases' | 'pruned_deliveries') => runs.flat().reduce((sum, run) => sum + run[key], 0);
  t.comment(`runs that changed something: ${runs.map((list, i) => `instance ${i + 1}: ${JSON.stringify(list)}`).join('; ')}`);
  t.equal(total('pruned_deliveries'), AGED, 'each aged delivery deleted exactly once, counting both processes');
  t.equal(total('expired_leases'), 300, 'each lapsed lease expired exactly once, counting both processes');
  for (const [i, server] of [one, two].entries()) t.notMatch(server.output(), /maintenance failed|"level":"(error|fatal)"/, `no maintenance error on instance ${i + 1}`);
});

t.test('without REDIS_URL each instance counts its own limits (N instances allow N × the limit), as the docs say', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (two processes on one database)' }, async (t) => {
  const docs = (await readFile('docs/deployment/README.md', 'utf8')).replace(/\s+/g, ' ');
  t.match(docs, 'Without Redis each instance counts rate limits on its own (N instances allow N × the limit)');
  const [one, two] = await Promise.all([startServer(serverEnv), startServer(serverEnv)]);
  t.teardown(() => Promise.all([one.stop(), two.stop()]));
  const fixture = await createFixture(one.url);
  const ip = randomIpv6();
  const statuses = [];
  for (let i = 0; i < 120; i++) statuses.push(await ingest(i % 2 ? one : two, fixture.hook, ip));
  t.same([...new Set(statuses)], [202], '120 deliveries from one IP over two instances accepted (60 each)');
  t.equal(await ingest(one, fixture.hook, ip), 429, 'the 61st on one instance is refused');
  t.equal(await ingest(two, fixture.hook, ip), 429, 'and the 61st on the other');
});
