import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { webhookDeliveries } from '../../src/db/schema.js';
import { asAgent, bearer, build, createAgent, createOrg, createWebhook, isolatedDatabaseEnv, TEST_DATABASE_URL } from '../helper.js';
import { githubHeaders } from '../support/signing.js';

/**
 * An app with an organization, an agent and a webhook routed to it. `ownDatabase`: a database of
 * the test's own, for tests that count what maintenance did: the shared one holds the leases other
 * tests left to expire, and on Postgres other test files' apps run maintenance on it too.
 */
async function routed(t: Test, env: Record<string, string | undefined> = {}, options: { ownDatabase?: boolean } = {}) {
  if (options.ownDatabase) env = { ...(await isolatedDatabaseEnv(t, { migrated: true })), ...env };
  const app = await build(t, { env, ...(options.ownDatabase ? { database: 'own' as const } : {}) });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const hook = await createWebhook(app, org.adminKey, { agent_id: agent.id });
  const deliver = async (payload: unknown) => {
    const body = JSON.stringify(payload);
    const res = await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body, { 'x-github-delivery': randomUUID() }), payload: body });
    if (res.statusCode !== 202) throw new Error(res.body);
    return res.json().delivery_id as string;
  };
  const lease = async (token = agent.token, payload: Record<string, unknown> = {}) =>
    app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(token), payload });
  return { app, env, org, agent, hook, deliver, lease };
}

t.test('an agent leases its pending deliveries, oldest first, marked untrusted, then acks them', async (t) => {
  const { app, org, agent, hook, deliver, lease } = await routed(t);
  const ids = [await deliver({ n: 1 }), await deliver({ n: 2 }), await deliver({ n: 3 })];
  const res = await lease(agent.token, { limit: 2, lease_seconds: 30 });
  t.equal(res.statusCode, 200);
  const items = res.json().data;
  t.same(items.map((item: { id: string }) => item.id), ids.slice(0, 2));
  t.match(items[0], { trust: 'untrusted', status: 'leased', attempts: 1, webhook_id: hook.id, body_text: '{"n":1}', lease_expires_at: String });
  const rest = (await lease()).json().data;
  t.same(rest.map((item: { id: string }) => item.id), [ids[2]], 'leased ones are not handed out again');
  t.same((await lease()).json().data, []);
  const ack = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${ids[0]}/ack`, headers: asAgent(agent.token) });
  t.same(ack.json(), { id: ids[0], status: 'done' });
  const again = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${ids[0]}/ack`, headers: asAgent(agent.token) });
  t.equal(again.statusCode, 409);
  t.equal(again.json().code, 'lease_not_held');
  const done = await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries?status=done`, headers: bearer(org.adminKey) });
  t.same(done.json().data.map((d: { id: string }) => d.id), [ids[0]]);
});

t.test('ids in paths are read in either case: an ack, a nack and a read with an upper-case id answer as with the canonical one', async (t) => {
  const { app, org, agent, hook, deliver, lease } = await routed(t);
  const ids = [await deliver({ n: 1 }), await deliver({ n: 2 })];
  t.equal((await lease()).json().data.length, 2);
  const ack = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${ids[0]!.toUpperCase()}/ack`, headers: asAgent(agent.token) });
  t.equal(ack.statusCode, 200, ack.body);
  t.same(ack.json(), { id: ids[0], status: 'done' }, 'acked, and answered with the canonical id');
  const nack = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${ids[1]!.toUpperCase()}/nack`, headers: asAgent(agent.token), payload: {} });
  t.equal(nack.statusCode, 200, nack.body);
  t.equal(nack.json().id, ids[1]);
  const read = await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id.toUpperCase()}/deliveries/${ids[0]!.toUpperCase()}`, headers: bearer(org.adminKey) });
  t.equal(read.statusCode, 200, read.body);
  t.match(read.json(), { id: ids[0], webhook_id: hook.id, status: 'done' });
});

t.test('nack returns a delivery to pending after retry_after_seconds; out of attempts it is dead, and redelivery revives it', async (t) => {
  const { app, org, agent, hook, deliver, lease } = await routed(t, { WEBHOOK_MAX_ATTEMPTS: '2' });
  const id = await deliver({ retry: true });
  await lease();
  const nack = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/nack`, headers: asAgent(agent.token), payload: { retry_after_seconds: 0, error: 'downstream 500' } });
  t.same(nack.json(), { id, status: 'pending' });
  t.equal((await lease()).json().data[0].attempts, 2);
  const last = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/nack`, headers: asAgent(agent.token) });
  t.same(last.json(), { id, status: 'dead' });
  t.same((await lease()).json().data, [], 'dead deliveries are not leased');
  const dead = await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${id}`, headers: bearer(org.adminKey) });
  t.match(dead.json(), { status: 'dead', attempts: 2, last_error: 'nack' });
  const revived = await app.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/deliveries/${id}/redeliver`, headers: bearer(org.adminKey) });
  t.match(revived.json(), { status: 'pending', attempts: 0 });
  t.equal((await lease()).json().data.length, 1);
});

t.test('a nack with a delay keeps the delivery back until then', async (t) => {
  const { app, agent, deliver, lease } = await routed(t);
  const id = await deliver({ later: true });
  await lease();
  await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/nack`, headers: asAgent(agent.token), payload: { retry_after_seconds: 3600 } });
  t.same((await lease()).json().data, []);
});

t.test('an expired lease returns the delivery to pending; after the last attempt it becomes dead', async (t) => {
  const { app, agent, deliver, lease } = await routed(t, { WEBHOOK_MAX_ATTEMPTS: '2' }, { ownDatabase: true });
  const id = await deliver({ slow: true });
  await lease();
  const expire = () => app.db.update(webhookDeliveries).set({ leaseExpiresAt: new Date(Date.now() - 1000) }).where(eq(webhookDeliveries.id, id));
  await expire();
  t.equal((await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/ack`, headers: asAgent(agent.token) })).statusCode, 409, 'an expired lease cannot be acked');
  t.equal((await lease()).json().data[0]?.id, id, 'leased again');
  await expire();
  const { expired } = await app.runMaintenance();
  t.equal(expired, 1, 'maintenance expired the lease');
  const [row] = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id));
  t.equal(row?.status, 'dead');
});

t.test('an agent with several webhooks gets the oldest of all of them first, past a backlog routed elsewhere', async (t) => {
  const { app, org, agent, hook, deliver, lease } = await routed(t);
  const second = await createWebhook(app, org.adminKey, { agent_id: agent.id });
  const otherAgent = await createAgent(app, org.adminKey);
  const elsewhere = await createWebhook(app, org.adminKey, { agent_id: otherAgent.id });
  const unrouted = await createWebhook(app, org.adminKey);
  const deliverTo = async (target: { url: string; secret: string }, payload: unknown) => {
    const body = JSON.stringify(payload);
    const res = await app.inject({ method: 'POST', url: target.url, headers: await githubHeaders(target.secret, body, { 'x-github-delivery': randomUUID() }), payload: body });
    t.equal(res.statusCode, 202);
    return res.json().delivery_id as string;
  };
  const mine: string[] = [];
  for (let i = 0; i < 4; i++) {
    await deliverTo(elsewhere, { elsewhere: i });
    await deliverTo(unrouted, { unrouted: i });
    // The webhook created second gets the older half: the oldest are not in the first webhook.
    mine.push(i < 2 ? await deliverTo(second, { second: i }) : await deliver({ first: i }));
  }
  const first = (await lease(agent.token, { limit: 3 })).json().data;
  t.same(first.map((item: { id: string }) => item.id), mine.slice(0, 3), 'oldest first across both webhooks');
  t.same(first.map((item: { webhook_id: string }) => item.webhook_id), [second.id, second.id, hook.id]);
  t.same((await lease(agent.token, { limit: 10 })).json().data.map((item: { id: string }) => item.id), mine.slice(3), 'then the rest, and nothing routed elsewhere');
  t.equal((await lease(otherAgent.token, { limit: 10 })).json().data.length, 4, 'the other agent gets its own');
});

t.test('deliveries only go to the agent their webhook routes to, and tenants cannot touch each other\'s', async (t) => {
  const { app, org, agent, hook, deliver, lease } = await routed(t);
  const other = await createOrg(app);
  const stranger = await createAgent(app, other.adminKey);
  const sameOrgAgent = await createAgent(app, org.adminKey);
  const id = await deliver({ private: true });
  t.same((await lease(stranger.token)).json().data, [], 'another tenant\'s agent gets nothing');
  t.same((await lease(sameOrgAgent.token)).json().data, [], 'an agent the webhook is not routed to gets nothing');
  await lease(agent.token);
  const strangerAck = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/ack`, headers: asAgent(stranger.token) });
  t.equal(strangerAck.statusCode, 404);
  for (const [method, url] of [
    ['GET', `/api/v1/webhooks/${hook.id}/deliveries`],
    ['GET', `/api/v1/webhooks/${hook.id}/deliveries/${id}`],
    ['POST', `/api/v1/webhooks/${hook.id}/deliveries/${id}/redeliver`],
  ] as const) {
    t.equal((await app.inject({ method, url, headers: bearer(other.adminKey) })).statusCode, 404, `${method} ${url}`);
  }
  const wrongHook = await createWebhook(app, org.adminKey);
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/webhooks/${wrongHook.id}/deliveries/${id}`, headers: bearer(org.adminKey) })).statusCode, 404, 'a delivery is found only under its own webhook');
});

t.test('an agent whose lease ended after its webhook was re-routed is told lease_not_held (409), and the new agent gets the delivery', async (t) => {
  const { app, org, agent, hook, deliver, lease } = await routed(t);
  const successor = await createAgent(app, org.adminKey);
  const id = await deliver({ rerouted: true });
  t.same((await lease(agent.token, { lease_seconds: 30 })).json().data.map((d: { id: string }) => d.id), [id]);
  const moved = await app.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { agent_id: successor.id } });
  t.equal(moved.statusCode, 200);
  // The lease runs out before the first agent finishes.
  await app.db.update(webhookDeliveries).set({ leaseExpiresAt: sql`now() - interval '1 second'` }).where(eq(webhookDeliveries.id, id));
  const late = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/ack`, headers: asAgent(agent.token) });
  t.equal(late.statusCode, 409, 'the agent knew this delivery: its lease ended, it is not "not found"');
  t.equal(late.json().code, 'lease_not_held');
  const expired = await lease(agent.token);
  t.same(expired.json().data, [], 'leasing again (which returns expired leases to pending) gives the old agent nothing');
  const later = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/nack`, headers: asAgent(agent.token), payload: {} });
  t.equal(later.statusCode, 409, 'and once its expiry was processed, still 409');
  t.same((await lease(successor.token)).json().data.map((d: { id: string }) => d.id), [id], 'the webhook\'s new agent leases it');
  const outsider = await createAgent(app, org.adminKey);
  t.equal((await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/ack`, headers: asAgent(outsider.token) })).statusCode, 404, 'an agent that never held it: 404');
});

t.test('webhooks can only be routed to agents of the same organization', async (t) => {
  const app = await build(t);
  const a = await createOrg(app);
  const b = await createOrg(app);
  const bAgent = await createAgent(app, b.adminKey);
  const res = await app.inject({ method: 'POST', url: '/api/v1/webhooks', headers: bearer(a.adminKey), payload: { name: 'x', agent_id: bAgent.id } });
  t.equal(res.statusCode, 400);
  t.equal(res.json().code, 'invalid_agent');
  const hook = await createWebhook(app, a.adminKey);
  const patch = await app.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(a.adminKey), payload: { agent_id: bAgent.id } });
  t.equal(patch.statusCode, 400);
});

t.test('concurrent leasers never get the same delivery', async (t) => {
  const { app, agent, deliver, lease } = await routed(t);
  // Two instances on one database when there is a Postgres server; the embedded one is single-process.
  const second = TEST_DATABASE_URL ? await build(t, { database: 'own' }) : app;
  const ids = new Set<string>();
  for (let i = 0; i < 60; i++) ids.add(await deliver({ i }));
  const leasers = Array.from({ length: 12 }, (_, i) =>
    (i % 2 ? second : app).inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(agent.token), payload: { limit: 7 } }),
  );
  const handed = (await Promise.all(leasers)).flatMap((res) => res.json().data.map((item: { id: string }) => item.id));
  t.equal(new Set(handed).size, handed.length, 'no delivery handed out twice');
  const rest = (await lease(agent.token, { limit: 100 })).json().data.map((item: { id: string }) => item.id);
  t.same(new Set([...handed, ...rest]), ids, 'every delivery handed out exactly once');
});

t.test('retention deletes old deliveries, safely when run by several instances at once', async (t) => {
  const { app, env, deliver } = await routed(t, { WEBHOOK_RETENTION_DAYS: '30' }, { ownDatabase: true });
  const old = [await deliver({ old: 1 }), await deliver({ old: 2 })];
  const fresh = await deliver({ fresh: true });
  await app.db.update(webhookDeliveries).set({ receivedAt: sql`now() - interval '31 days'` }).where(sql`${webhookDeliveries.id} in (${sql.join(old.map((id) => sql`${id}`), sql`, `)})`);
  // A second instance on the same database when there is a Postgres server; the embedded one is single-process.
  const instances = TEST_DATABASE_URL ? [app, await build(t, { database: 'own', env })] : [app];
  const results = await Promise.all(instances.map((instance) => instance.runMaintenance()));
  t.equal(results.reduce((sum, r) => sum + r.pruned, 0), 2, 'each old delivery deleted once');
  const left = await app.db.select({ id: webhookDeliveries.id }).from(webhookDeliveries).where(sql`${webhookDeliveries.id} in (${sql.join([...old, fresh].map((id) => sql`${id}`), sql`, `)})`);
  t.same(left.map((row) => row.id), [fresh]);
});
