import { randomUUID } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { rowsOf } from '../../src/db/client.js';
import { webhookDeliveries, webhooks } from '../../src/db/schema.js';
import { bearer, build, createOrg, createWebhook, randomIpv6 } from '../helper.js';
import { githubHeaders, rawSignature, standardHeaders } from '../support/signing.js';

const MB = 1_048_576;

async function setup(t: Test, env: Record<string, string> = {}) {
  const app = await build(t, { env });
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  return { app, org, hook };
}

t.test('accepts a GitHub-signed JSON delivery with 202 and stores it byte-exact', async (t) => {
  const { app, org, hook } = await setup(t);
  const body = JSON.stringify({ action: 'opened', issue: { number: 1, title: 'héllo ✓' } });
  const delivery = randomUUID();
  const res = await app.inject({
    method: 'POST',
    url: hook.url,
    headers: { ...(await githubHeaders(hook.secret, body)), 'x-github-delivery': delivery, 'x-github-event': 'issues', 'user-agent': 'GitHub-Hookshot/abc', authorization: 'Bearer leak' },
    payload: body,
  });
  t.equal(res.statusCode, 202);
  t.match(res.json(), { delivery_id: String, duplicate: false });
  const stored = await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${res.json().delivery_id}`, headers: bearer(org.adminKey) });
  const json = stored.json();
  t.equal(Buffer.from(json.body_base64, 'base64').toString('utf8'), body);
  t.equal(json.body_text, body);
  t.match(json, { status: 'pending', delivery_key: delivery, content_type: 'application/json', size: Buffer.byteLength(body) });
  t.match(json.headers, { 'x-github-event': 'issues', 'x-github-delivery': delivery, 'user-agent': 'GitHub-Hookshot/abc' });
  t.notOk(json.headers['x-hub-signature-256'], 'signature headers are not kept');
  t.notOk(json.headers.authorization);
});

t.test('accepts a Standard Webhooks delivery signed by the reference library', async (t) => {
  const { app, hook } = await setup(t);
  const body = JSON.stringify({ type: 'invoice.paid', data: { amount: 42 } });
  const res = await app.inject({ method: 'POST', url: hook.url, headers: standardHeaders(hook.secret, body, `msg_${randomUUID()}`), payload: body });
  t.equal(res.statusCode, 202);
});

t.test('rejects a flipped byte, a missing signature and a stale or future timestamp with 403 codes', async (t) => {
  const { app, hook } = await setup(t);
  const body = JSON.stringify({ n: 1 });
  const flipped = body.replace('1', '2');
  const github = await githubHeaders(hook.secret, body);
  const cases: [string, Record<string, string>, string, string][] = [
    ['flipped byte (GitHub)', github, flipped, 'signature_invalid'],
    ['flipped byte (Standard)', standardHeaders(hook.secret, body, 'msg_1'), flipped, 'signature_invalid'],
    ['wrong secret', await githubHeaders('whsec_other', body), body, 'signature_invalid'],
    ['missing', { 'content-type': 'application/json' }, body, 'signature_missing'],
    ['garbage header', { 'content-type': 'application/json', 'x-hub-signature-256': 'sha1=abc' }, body, 'signature_invalid'],
    ['stale timestamp', standardHeaders(hook.secret, body, 'msg_2', new Date(Date.now() - 400_000)), body, 'timestamp_out_of_tolerance'],
    ['future timestamp', standardHeaders(hook.secret, body, 'msg_3', new Date(Date.now() + 400_000)), body, 'timestamp_out_of_tolerance'],
  ];
  for (const [label, headers, payload, code] of cases) {
    const res = await app.inject({ method: 'POST', url: hook.url, headers, payload });
    t.equal(res.statusCode, 403, label);
    t.equal(res.json().code, code, label);
    t.notMatch(res.body, /sha256=|v1,/, `${label}: no signature echoed`);
  }
  const count = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id));
  t.equal(count.length, 0, 'nothing stored');
  await app.auditFailures.flush();
});

t.test('accepts exactly WEBHOOK_MAX_PAYLOAD_BYTES and refuses one byte more with 413', async (t) => {
  const { app, hook } = await setup(t);
  const exact = Buffer.alloc(MB, 0x61);
  const ok = await app.inject({ method: 'POST', url: hook.url, headers: { 'content-type': 'application/octet-stream', 'x-webhook-signature': rawSignature(hook.secret, exact) }, payload: exact });
  t.equal(ok.statusCode, 202);
  const over = Buffer.alloc(MB + 1, 0x61);
  const res = await app.inject({ method: 'POST', url: hook.url, headers: { 'content-type': 'application/octet-stream', 'x-webhook-signature': rawSignature(hook.secret, over) }, payload: over });
  t.equal(res.statusCode, 413);
  t.equal(res.json().code, 'payload_too_large');
});

t.test('stores non-UTF-8 bytes and non-JSON bodies byte-exact', async (t) => {
  const { app, org, hook } = await setup(t);
  for (const [type, body] of [
    ['application/octet-stream', Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x81, 0x0a])],
    ['text/plain; charset=latin1', Buffer.from('caf\xe9', 'latin1')],
    ['application/x-www-form-urlencoded', Buffer.from('payload=%7B%7D&a=1')],
  ] as const) {
    const res = await app.inject({ method: 'POST', url: hook.url, headers: { 'content-type': type, 'x-webhook-signature': rawSignature(hook.secret, body) }, payload: body });
    t.equal(res.statusCode, 202, type);
    const got = (await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${res.json().delivery_id}`, headers: bearer(org.adminKey) })).json();
    t.same(Buffer.from(got.body_base64, 'base64'), body, `${type} byte-exact`);
    t.equal(got.content_type, type);
  }
});

t.test('credential-like headers are never stored, whatever the sender calls them; the others are', async (t) => {
  const { app, org, hook } = await setup(t);
  const body = '{"ok":true}';
  const secrets = {
    'x-gitlab-token': 'glt-leak',
    'x-api-key': 'key-leak',
    'x-auth-token': 'auth-leak',
    'x-slack-signature': 'v0=leak',
    'x-shopify-hmac-sha256': 'hmac-leak',
    'x-amz-security-token': 'amz-leak',
    'x-twilio-signature': 'twilio-leak',
    'x-client-secret': 'secret-leak',
    'x-functions-key': 'azure-leak',
    'x-webhook-key': 'key-leak',
    'x-api_key': 'underscore-leak',
    'x-goog-iap-jwt-assertion': 'jwt-leak',
    'x-bearer': 'bearer-leak',
    'x-passphrase': 'pass-leak',
    'x-sig': 'sig-leak',
    cookie: 'session=leak',
  };
  const kept = { 'x-gitlab-event': 'Push Hook', 'x-event-key': 'repo:push', 'x-request-id': 'req-1', 'webhook-origin': 'ci', 'user-agent': 'GitLab/17.0' };
  const res = await app.inject({ method: 'POST', url: hook.url, headers: { ...(await githubHeaders(hook.secret, body)), ...secrets, ...kept }, payload: body });
  t.equal(res.statusCode, 202);
  const got = (await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${res.json().delivery_id}`, headers: bearer(org.adminKey) })).json();
  t.match(got.headers, kept);
  for (const name of Object.keys(secrets)) t.notOk(name in got.headers, `${name} is not stored`);
  const row = rowsOf<{ h: string }>(await app.db.execute(sql`select headers::text as h from webhook_deliveries where id = ${res.json().delivery_id}`))[0]!;
  t.notMatch(row.h, /leak/, 'no credential value is in the row');
});

t.test('a compressed body is stored as sent with its Content-Encoding; only identity-encoded bodies declared JSON must parse', async (t) => {
  const { app, org, hook } = await setup(t);
  const send = async (body: Buffer, headers: Record<string, string>) => {
    const res = await app.inject({ method: 'POST', url: hook.url, headers: { 'x-webhook-signature': rawSignature(hook.secret, body), ...headers }, payload: body });
    return res;
  };
  const gzipped = gzipSync('{"compressed":true}');
  const res = await send(gzipped, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
  t.equal(res.statusCode, 202);
  const got = (await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${res.json().delivery_id}`, headers: bearer(org.adminKey) })).json();
  t.same(Buffer.from(got.body_base64, 'base64'), gzipped, 'byte-exact');
  t.equal(got.headers['content-encoding'], 'gzip', 'a reader can decode it');
  t.equal(gunzipSync(Buffer.from(got.body_base64, 'base64')).toString(), '{"compressed":true}');

  t.equal((await send(Buffer.from('{"n":'), { 'content-type': 'application/json', 'content-encoding': 'identity' })).json().code, 'invalid_json', 'identity is no encoding');
  t.equal((await send(Buffer.from('{"n":'), { 'content-type': 'application/json; charset=utf-8' })).json().code, 'invalid_json');
  t.equal((await send(Buffer.from('{"n":'), { 'content-type': 'application/vnd.api+json' })).json().code, 'invalid_json');
  const seq = Buffer.from('\x1e{"a":1}\n\x1e{"b":2}\n');
  t.equal((await send(seq, { 'content-type': 'application/json-seq' })).statusCode, 202, 'application/json-seq is not application/json');
});

t.test('the webhook id in the URL is read in either case, as the management API reads it', async (t) => {
  const { app, hook } = await setup(t);
  const body = '{"upper":true}';
  const res = await app.inject({ method: 'POST', url: hook.url.replace(hook.id, hook.id.toUpperCase()), headers: await githubHeaders(hook.secret, body), payload: body });
  t.equal(res.statusCode, 202);
  const again = await app.inject({ method: 'POST', url: hook.url.replace(hook.id, hook.id.toUpperCase()), headers: await githubHeaders(hook.secret, body), payload: body });
  t.equal(again.statusCode, 202, 'and again once cached');
});

t.test('malformed JSON with a valid signature answers 400 invalid_json', async (t) => {
  const { app, hook } = await setup(t);
  const body = '{"unterminated": ';
  const res = await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body });
  t.equal(res.statusCode, 400);
  t.equal(res.json().code, 'invalid_json');
});

t.test('a repeated delivery id stores nothing new and answers 200 duplicate with the original id', async (t) => {
  const { app, hook } = await setup(t);
  const body = JSON.stringify({ once: true });
  for (const keyHeader of ['x-github-delivery', 'idempotency-key']) {
    const key = randomUUID();
    const headers = await githubHeaders(hook.secret, body, { [keyHeader]: key });
    const first = await app.inject({ method: 'POST', url: hook.url, headers, payload: body });
    const again = await app.inject({ method: 'POST', url: hook.url, headers, payload: body });
    t.equal(first.statusCode, 202);
    t.equal(again.statusCode, 200);
    t.same(again.json(), { delivery_id: first.json().delivery_id, duplicate: true });
  }
  const id = `msg_${randomUUID()}`;
  const std = standardHeaders(hook.secret, body, id);
  const a = await app.inject({ method: 'POST', url: hook.url, headers: std, payload: body });
  const b = await app.inject({ method: 'POST', url: hook.url, headers: std, payload: body });
  t.equal(b.json().delivery_id, a.json().delivery_id);
  const rows = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id));
  t.equal(rows.length, 3, 'one row per delivery id');
});

t.test('unknown webhooks answer 404 and disabled ones 410', async (t) => {
  const { app, org, hook } = await setup(t);
  for (const url of ['/api/v1/hooks/01a204b0-0000-7000-8000-000000000000', '/api/v1/hooks/not-a-uuid', "/api/v1/hooks/1'%20OR%201=1"]) {
    const res = await app.inject({ method: 'POST', url, payload: '{}', headers: { 'content-type': 'application/json' } });
    t.equal(res.statusCode, 404, url);
    t.equal(res.json().code, 'not_found');
  }
  await app.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: bearer(org.adminKey), payload: { enabled: false } });
  const res = await app.inject({ method: 'POST', url: hook.url, payload: '{}', headers: { 'content-type': 'application/json' } });
  t.equal(res.statusCode, 410);
  t.equal(res.json().code, 'webhook_disabled');
});

t.test('the 61st request from one IP within the window gets 429; another IP passes', async (t) => {
  const { app, hook } = await setup(t);
  const ip = randomIpv6();
  const body = '{}';
  const headers = await githubHeaders(hook.secret, body);
  for (let i = 0; i < 60; i++) {
    const res = await app.inject({ method: 'POST', url: hook.url, headers, payload: body, remoteAddress: ip });
    t.equal(res.statusCode, 202);
  }
  const limited = await app.inject({ method: 'POST', url: hook.url, headers, payload: body, remoteAddress: ip });
  t.equal(limited.statusCode, 429);
  t.equal(limited.json().code, 'rate_limited');
  t.ok(Number(limited.headers['retry-after']) >= 1);
  const unknown = await app.inject({ method: 'POST', url: '/api/v1/hooks/01a204b0-0000-7000-8000-000000000000', headers, payload: body, remoteAddress: ip });
  t.equal(unknown.statusCode, 429, 'the limit comes before the webhook lookup');
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers, payload: body, remoteAddress: randomIpv6() })).statusCode, 202);
});

t.test('during a rotation overlap both secrets verify; after it only the new one', async (t) => {
  const { app, org, hook } = await setup(t);
  const rotate = await app.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 3600 } });
  t.equal(rotate.statusCode, 200);
  const fresh = rotate.json().secret;
  t.not(fresh, hook.secret);
  t.type(rotate.json().webhook.previous_secret_expires_at, 'string');
  const body = '{"r":1}';
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body })).statusCode, 202, 'old secret in overlap');
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(fresh, body), payload: body })).statusCode, 202, 'new secret');
  await app.db.update(webhooks).set({ previousSecretExpiresAt: new Date(Date.now() - 1000) }).where(eq(webhooks.id, hook.id));
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body })).statusCode, 403, 'old secret after the overlap');
  const zero = await app.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 0 } });
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(fresh, body), payload: body })).statusCode, 403, 'zero overlap: the previous secret stops at once');
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(zero.json().secret, body), payload: body })).statusCode, 202);
});

t.test('any Content-Type is taken, also one that does not parse as a media type, and stored as sent', async (t) => {
  const { app, org, hook } = await setup(t);
  for (const contentType of ['', 'text', 'json', '/', 'a b c', 'undefined', 'application/', ' text/plain ; x', 'application/json;']) {
    const body = '{"odd":true}';
    const res = await app.inject({ method: 'POST', url: hook.url, headers: { ...(await githubHeaders(hook.secret, body)), 'content-type': contentType }, payload: body });
    t.equal(res.statusCode, 202, `${JSON.stringify(contentType)}: ${res.body}`);
    if (res.statusCode !== 202) continue;
    const stored = (await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${res.json().delivery_id}`, headers: bearer(org.adminKey) })).json();
    t.equal(stored.content_type, contentType, 'stored as sent');
    t.equal(stored.headers['content-type'], contentType);
    t.equal(stored.body_text, body);
  }
});

t.test('body_text is the body exactly, a leading byte-order mark included', async (t) => {
  const { app, org, hook } = await setup(t);
  const body = '\uFEFFhello';
  const res = await app.inject({ method: 'POST', url: hook.url, headers: { ...(await githubHeaders(hook.secret, body)), 'content-type': 'text/plain' }, payload: body });
  t.equal(res.statusCode, 202, res.body);
  const stored = (await app.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries/${res.json().delivery_id}`, headers: bearer(org.adminKey) })).json();
  t.same(Buffer.from(stored.body_base64, 'base64'), Buffer.from(body, 'utf8'));
  t.equal(stored.body_text, body, 'the mark is kept');
});

t.test('two rotations at once: the later one\'s secret is current and the earlier one\'s stays valid for the overlap', async (t) => {
  const { app, org, hook } = await setup(t);
  const rotate = () => app.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 3600 } });
  const answers = await Promise.all([rotate(), rotate()]);
  t.same(answers.map((res) => res.statusCode), [200, 200]);
  const body = '{"race":1}';
  for (const [i, res] of answers.entries()) {
    const accepted = await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(res.json().secret, body), payload: body });
    t.equal(accepted.statusCode, 202, `the secret rotation ${i + 1} answered verifies`);
  }
});

t.test('the stored secret is encrypted, bound to its row', async (t) => {
  const { app, org, hook } = await setup(t);
  const leaked = rowsOf(await app.db.execute(sql`select id from webhooks where row_to_json(webhooks)::text like ${`%${hook.secret.slice(6)}%`}`));
  t.equal(leaked.length, 0, 'the plaintext is nowhere in the row');
  const other = await createWebhook(app, org.adminKey);
  const [source] = await app.db.select().from(webhooks).where(eq(webhooks.id, hook.id));
  await app.db.update(webhooks).set({ secretCiphertext: source!.secretCiphertext }).where(eq(webhooks.id, other.id));
  const body = '{}';
  const res = await app.inject({ method: 'POST', url: other.url, headers: await githubHeaders(hook.secret, body), payload: body });
  t.equal(res.statusCode, 503, 'a ciphertext copied to another row does not decrypt');
  t.equal(res.json().code, 'encryption_key_unavailable');
});

t.test('signature_scheme none accepts unsigned deliveries and says so everywhere', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey, { signature_scheme: 'none' });
  const res = await app.inject({ method: 'POST', url: hook.url, payload: 'ping', headers: { 'content-type': 'text/plain' } });
  t.equal(res.statusCode, 202);
  const listed = await app.inject({ method: 'GET', url: '/api/v1/webhooks', headers: bearer(org.adminKey) });
  t.equal(listed.json().data[0].signature_scheme, 'none');
  const events = (await app.inject({ method: 'GET', url: '/api/v1/audit-events?action=webhook.created', headers: bearer(org.adminKey) })).json().data;
  t.equal(events[0].details.signature_scheme, 'none', 'the choice is audited');
});
