// DATABASE_POOL_MAX=1 is a valid setting. The server starts (the migrations' lock is held on a
// connection of its own: on the pool's only one, the migrations waited for it forever), and the
// hot paths, which run several batches at once (ingest writers, webhook and agent-token lookups,
// acks), more in all than the pool, queue for the connection in the driver: nothing holds a
// connection while it waits for another, so every kind of request still gets its answer in time.
import { createHash } from 'node:crypto';
import t from 'tap';
import { asAgent, bearer, build, createAgent, createOrg, createWebhook, randomIp, TEST_DATABASE_URL } from '../helper.js';
import { rawSignature } from '../support/signing.js';

t.test(
  'DATABASE_POOL_MAX=1: concurrent ingest (small and large bodies), agent auth, leases, acks and operator reads all succeed',
  { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (the embedded database is always one connection, and every other test runs on it)' },
  async (t) => {
    const app = await build(t, { database: 'own', env: { DATABASE_POOL_MAX: '1', REQUEST_TIMEOUT_MS: '10000' } });
    const org = await createOrg(app);
    const agents = await Promise.all(Array.from({ length: 4 }, () => createAgent(app, org.adminKey)));
    const routed = await createWebhook(app, org.adminKey, { agent_id: agents[0]!.id });
    const unrouted = await createWebhook(app, org.adminKey);
    const ingest = (hook: { url: string; secret: string }, body: Buffer) =>
      app.inject({
        method: 'POST',
        url: hook.url,
        headers: { 'content-type': 'application/octet-stream', 'x-webhook-signature': rawSignature(hook.secret, body) },
        payload: body,
        remoteAddress: randomIp(),
      });
    // Ten leasable deliveries first, so the acks below have something to ack.
    for (let i = 0; i < 10; i++) t.equal((await ingest(routed, Buffer.from(`{"seed":${i}}`))).statusCode, 202);

    const small = Array.from({ length: 60 }, (_, i) => Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(1000) })));
    // 100 KB each: batches of 64 KB or more go by COPY in a transaction of their own.
    const large = Array.from({ length: 4 }, (_, i) => Buffer.alloc(100_000, 97 + i));
    const leaseAndAck = async () => {
      const leased = await app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(agents[0]!.token), payload: { limit: 10, lease_seconds: 60 } });
      const ids = (leased.json().data as { id: string }[]).map((d) => d.id);
      const acks = await Promise.all(ids.map((id) => app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/ack`, headers: asAgent(agents[0]!.token) })));
      return { leased: leased.statusCode, count: ids.length, acks: acks.map((a) => a.statusCode) };
    };
    const [smallRes, largeRes, auths, lease, reads] = await Promise.all([
      Promise.all(small.map((body) => ingest(unrouted, body))),
      Promise.all(large.map((body) => ingest(unrouted, body))),
      Promise.all(agents.flatMap((agent) => [1, 2, 3].map(() => app.inject({ method: 'POST', url: '/api/v1/agent/auth', headers: asAgent(agent.token) })))),
      leaseAndAck(),
      Promise.all([
        app.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(org.adminKey) }),
        app.inject({ method: 'GET', url: `/api/v1/webhooks/${unrouted.id}/deliveries`, headers: bearer(org.adminKey) }),
        app.inject({ method: 'GET', url: '/readyz' }),
      ]),
    ]);
    t.same([...new Set(smallRes.map((r) => r.statusCode))], [202], '60 small deliveries stored');
    t.same([...new Set(largeRes.map((r) => r.statusCode))], [202], '4 large deliveries stored (COPY)');
    t.same([...new Set(auths.map((r) => r.statusCode))], [200], '12 agent authentications');
    t.equal(lease.leased, 200);
    t.equal(lease.count, 10, 'ten deliveries leased');
    t.same([...new Set(lease.acks)], [200], 'and acked');
    t.same(reads.map((r) => r.statusCode), [200, 200, 200], 'operator reads and readiness answer meanwhile');

    const stored = await app.inject({ method: 'GET', url: `/api/v1/webhooks/${unrouted.id}/deliveries?limit=100`, headers: bearer(org.adminKey) });
    const bodies = new Set((stored.json().data as { body_sha256: string }[]).map((d) => d.body_sha256));
    const sent = [...small, ...large].map((body) => createHash('sha256').update(body).digest('hex'));
    t.equal(bodies.size, 64);
    t.ok(sent.every((hash) => bodies.has(hash)), 'every body acknowledged is stored, byte for byte');
  },
);
