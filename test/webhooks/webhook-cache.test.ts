// Ingest verifies a known webhook against its cached row, and the INSERT checks that row is still
// current. Two apps on one database stand for two instances: a change made through one is seen by
// the next delivery to the other, whose cached copy is then out of date.
import { randomUUID } from 'node:crypto';
import { eq, inArray } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { storeDeliveries, WebhookChanged } from '../../src/db/deliveries.js';
import { webhookDeliveries, webhooks } from '../../src/db/schema.js';
import { webhookCache } from '../../src/routes/hooks/webhook-cache.js';
import { bearer, build, createOrg, createWebhookWithRow, type WebhookWithRow } from '../helper.js';
import { newDelivery } from '../support/deliveries.js';
import { githubHeaders } from '../support/signing.js';

async function twoInstances(t: Test) {
  const ingest = await build(t);
  const admin = await build(t);
  const org = await createOrg(admin);
  const hook = await createWebhookWithRow(admin, org.adminKey);
  const send = async (secret: string, body: string) => {
    const res = await ingest.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(secret, body, { 'x-github-delivery': randomUUID() }), payload: body });
    return { status: res.statusCode, code: res.statusCode >= 400 ? (res.json().code as string) : null };
  };
  // The first delivery reads the row; the ingest instance keeps it from then on.
  t.equal((await send(hook.secret, '{"n":0}')).status, 202, 'the first delivery is stored');
  const stored = async () =>
    (await admin.db.select({ body: webhookDeliveries.body }).from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id))).map((row) =>
      row.body.toString(),
    );
  return { ingest, admin, org, hook, send, stored };
}

t.test('a webhook disabled through another instance refuses the next delivery; enabled again, it accepts', async (t) => {
  const { admin, org, hook, send, stored } = await twoInstances(t);
  const patch = (enabled: boolean) => admin.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled } });
  t.equal((await patch(false)).statusCode, 200);
  t.same(await send(hook.secret, '{"n":1}'), { status: 410, code: 'webhook_disabled' });
  t.equal((await patch(true)).statusCode, 200);
  t.equal((await send(hook.secret, '{"n":2}')).status, 202, 'a disabled webhook is never cached: re-enabling is seen at once');
  t.same((await stored()).sort(), ['{"n":0}', '{"n":2}']);
});

t.test('a webhook disabled or deleted through another instance says so before judging the body (not 413, not invalid_json)', async (t) => {
  const { ingest, admin, org, hook, send } = await twoInstances(t);
  const oversized = async () => {
    const body = Buffer.alloc(1_048_577, 0x61);
    const res = await ingest.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body.toString(), { 'x-github-delivery': randomUUID(), 'content-type': 'application/octet-stream' }), payload: body });
    return { status: res.statusCode, code: res.json().code as string };
  };
  t.same(await oversized(), { status: 413, code: 'payload_too_large' }, 'enabled: the size is the problem');
  t.same(await send(hook.secret, '{"n":'), { status: 400, code: 'invalid_json' }, 'enabled: the JSON is the problem');
  t.equal((await admin.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled: false } })).statusCode, 200);
  t.same(await send(hook.secret, '{"n":'), { status: 410, code: 'webhook_disabled' });
  t.equal((await admin.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled: true } })).statusCode, 200);
  t.equal((await send(hook.secret, '{"n":1}')).status, 202, 'cached again');
  t.equal((await admin.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled: false } })).statusCode, 200);
  t.same(await oversized(), { status: 410, code: 'webhook_disabled' });
  t.equal((await admin.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled: true } })).statusCode, 200);
  t.equal((await send(hook.secret, '{"n":2}')).status, 202, 'cached again');
  t.equal((await admin.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey) })).statusCode, 204);
  t.same(await oversized(), { status: 404, code: 'not_found' });
});

t.test('a body or delivery id refused on a cached copy is judged on the current row first: disabled 410, secret rotated away 403', async (t) => {
  const { ingest, admin, org, hook, send } = await twoInstances(t);
  const badKey = async (secret: string) => {
    const body = '{"n":1}';
    const res = await ingest.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(secret, body, { 'idempotency-key': 'a b' }), payload: body });
    return { status: res.statusCode, code: res.json().code as string };
  };
  t.same(await badKey(hook.secret), { status: 400, code: 'bad_request' }, 'enabled: the delivery id is the problem');
  const patch = (enabled: boolean) => admin.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled } });
  t.equal((await patch(false)).statusCode, 200);
  t.same(await badKey(hook.secret), { status: 410, code: 'webhook_disabled' }, 'disabled since: 410, not the delivery id');
  t.equal((await patch(true)).statusCode, 200);
  t.equal((await send(hook.secret, '{"n":2}')).status, 202, 'cached again');
  // A leaked secret rotated away with no overlap: its signature is refused, the body not judged.
  const rotated = await admin.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 0 } });
  t.equal(rotated.statusCode, 200);
  t.same(await send(hook.secret, '{"n":'), { status: 403, code: 'signature_invalid' }, 'not invalid_json: that would tell the holder of the old secret it still verifies');
  t.same(await badKey(hook.secret), { status: 403, code: 'signature_invalid' });
  t.same(await send(rotated.json().secret, '{"n":'), { status: 400, code: 'invalid_json' }, 'with the current secret the body is the problem');
});

t.test('a webhook deleted through another instance answers 404 to the next delivery', async (t) => {
  const { admin, org, hook, send } = await twoInstances(t);
  t.equal((await admin.inject({ method: 'DELETE', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey) })).statusCode, 204);
  t.same(await send(hook.secret, '{"n":1}'), { status: 404, code: 'not_found' });
});

t.test('after a rotation through another instance the new secret verifies at once and the old one stores nothing', async (t) => {
  const { admin, org, hook, send, stored } = await twoInstances(t);
  const rotated = await admin.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 0 } });
  t.equal(rotated.statusCode, 200);
  // The cached copy still holds the old secret, which verifies this delivery; the INSERT finds the
  // row changed, and against the current row the signature fails.
  t.same(await send(hook.secret, '{"old":1}'), { status: 403, code: 'signature_invalid' });
  t.equal((await send(rotated.json().secret, '{"new":1}')).status, 202, 'the new secret');
  t.same((await stored()).sort(), ['{"n":0}', '{"new":1}'], 'nothing was stored under the old secret');
});

t.test('an overlap ended through another instance stops the previous secret at once', async (t) => {
  const { admin, org, hook, send } = await twoInstances(t);
  const rotated = await admin.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 3600 } });
  t.equal((await send(hook.secret, '{"overlap":1}')).status, 202, 'the previous secret during the overlap');
  await admin.db.update(webhooks).set({ previousSecretExpiresAt: new Date(Date.now() - 1000) }).where(eq(webhooks.id, hook.id));
  t.same(await send(hook.secret, '{"overlap":2}'), { status: 403, code: 'signature_invalid' }, 'the cached expiry is not trusted');
  t.equal((await send(rotated.json().secret, '{"overlap":3}')).status, 202);
});

t.test('storing under a webhook state that is no longer current stores nothing and says so, row by row', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const other = await createWebhookWithRow(app, org.adminKey);
  const delivery = (target: WebhookWithRow, text: string, verifiedWith = target.verifiedWith) => newDelivery(target, text, { verifiedWith });
  const variants = {
    secret: { ...hook.verifiedWith, secretCiphertext: other.verifiedWith.secretCiphertext },
    previous: { ...hook.verifiedWith, previousSecretCiphertext: other.verifiedWith.secretCiphertext, previousSecretExpiresAt: new Date(Date.now() + 60_000) },
    scheme: { ...hook.verifiedWith, signatureScheme: 'none' as const },
  };
  const results = await storeDeliveries(app.db, [
    delivery(hook, '{"current":1}'),
    delivery(hook, '{"secret":1}', variants.secret),
    delivery(hook, '{"previous":1}', variants.previous),
    delivery(hook, '{"scheme":1}', variants.scheme),
    delivery({ ...hook, organizationId: other.organizationId, id: randomUUID() }, '{"missing":1}'),
    delivery(other, '{"other":1}'),
  ]);
  t.same(
    results.map((result) => result.ok),
    [true, false, false, false, false, true],
  );
  for (const result of results.filter((r) => !r.ok)) t.type(result.ok ? null : result.error, WebhookChanged);
  await app.db.update(webhooks).set({ enabled: false }).where(eq(webhooks.id, other.id));
  const [disabled] = await storeDeliveries(app.db, [delivery(other, '{"disabled":1}')]);
  t.type(disabled!.ok ? null : disabled!.error, WebhookChanged, 'a disabled webhook stores nothing');
  const rows = await app.db
    .select({ body: webhookDeliveries.body })
    .from(webhookDeliveries)
    .where(inArray(webhookDeliveries.webhookId, [hook.id, other.id]));
  t.same(rows.map((row) => row.body.toString()).sort(), ['{"current":1}', '{"other":1}']);
});

t.test('a repeat in the same batch verified against another webhook state is judged on its own, not answered duplicate', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhookWithRow(app, org.adminKey);
  const other = await createWebhookWithRow(app, org.adminKey);
  // As after a rotation: a copy of the row holding a secret the webhook no longer has.
  const stale = { ...hook.verifiedWith, secretCiphertext: other.verifiedWith.secretCiphertext };
  for (const order of ['current first', 'stale first'] as const) {
    const deliveryKey = randomUUID();
    const current = newDelivery(hook, '{"current":1}', { deliveryKey });
    const old = newDelivery(hook, '{"stale":1}', { deliveryKey, verifiedWith: stale });
    const results = await storeDeliveries(app.db, order === 'current first' ? [current, old] : [old, current]);
    const [forCurrent, forStale] = order === 'current first' ? results : [results[1], results[0]];
    t.match(forCurrent, { ok: true, value: { duplicate: false } }, `${order}: the current one is stored`);
    t.type(forStale!.ok ? null : forStale!.error, WebhookChanged, `${order}: the stale one is sent back to be verified again, not answered duplicate`);
  }
  const deliveryKey = randomUUID();
  const same = await storeDeliveries(app.db, [newDelivery(hook, '{"a":1}', { deliveryKey }), newDelivery(hook, '{"a":1}', { deliveryKey })]);
  t.same(
    same.map((result) => result.ok && result.value.duplicate),
    [false, true],
    'a repeat verified against the same state is a duplicate',
  );
});

t.test('the cache keeps enabled webhooks only, and drops the least recently used past its size', async (t) => {
  const cache = webhookCache(2);
  const row = (id: string, enabled = true) => ({ id, enabled }) as Parameters<typeof cache.set>[0];
  cache.set(row('a'));
  cache.set(row('b'));
  t.ok(cache.get('a'), 'a used: b is now the oldest');
  cache.set(row('c'));
  t.equal(cache.size, 2);
  t.equal(cache.get('b'), undefined, 'the least recently used went');
  t.ok(cache.get('a'));
  t.ok(cache.get('c'));
  cache.set(row('a', false));
  t.equal(cache.get('a'), undefined, 'a disabled row replaces nothing: it is dropped');
  cache.delete('c');
  t.equal(cache.size, 0);
});
