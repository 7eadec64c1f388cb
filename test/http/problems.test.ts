import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { sql } from 'drizzle-orm';
import { connect } from 'node:net';
import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import t, { type Test } from 'tap';
import { z } from 'zod';
import errorsPlugin from '../../src/plugins/errors.js';
import httpPlugin from '../../src/plugins/http.js';
import { asAdmin, asAgent, bearer, build, createAgent, createOrg, sharedDatabase, testConfig } from '../helper.js';

function assertProblem(t: Tap, res: { statusCode: number; headers: Record<string, unknown>; json(): any }, status: number, code: string) {
  t.equal(res.statusCode, status, `status ${status}`);
  t.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const body = res.json();
  t.equal(body.status, status);
  t.equal(body.code, code);
  t.equal(body.type, `urn:switchboard:problem:${code}`);
  t.type(body.title, 'string');
  t.type(body.detail, 'string');
  t.equal(body.request_id, res.headers['x-request-id']);
  return body;
}
type Tap = Test;

t.test('the real app answers an unknown path with a 404 problem', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/nope?x=1' });
  const body = assertProblem(t, res, 404, 'not_found');
  t.match(body.detail, '/nope');
});

t.test('the real app answers a known path with the wrong method with a 405 problem and Allow', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'DELETE', url: '/healthz' });
  assertProblem(t, res, 405, 'method_not_allowed');
  t.match(String(res.headers.allow), /GET/);
});

t.test('the real app answers a path that is not valid percent-encoded UTF-8 with a 400 bad_request problem', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/api/v1/agents/%C0%AE' });
  assertProblem(t, res, 400, 'bad_request');
});

t.test('the real app answers a path segment over 200 characters with a 414 uri_too_long problem', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: `/api/v1/agents/${'a'.repeat(201)}` });
  assertProblem(t, res, 414, 'uri_too_long');
});

t.test('text Postgres cannot store (NUL, unpaired surrogates) is refused with 400 validation_failed naming where it is', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const cases = [
    { url: '/api/v1/agents', headers: bearer(org.adminKey), payload: '{"name":"a","description":"x\\u0000y"}', location: 'body', path: '/description' },
    { url: '/api/v1/agents', headers: bearer(org.adminKey), payload: '{"name":"a","metadata":{"k":["ok","\\ud800"]}}', location: 'body', path: '/metadata/k/1' },
    { url: '/api/v1/agents', headers: bearer(org.adminKey), payload: '{"name":"a","metadata":{"k\\u0000":1}}', location: 'body', path: '/metadata' },
    { url: '/api/v1/organizations', headers: asAdmin, payload: '{"name":"\\udc00x"}', location: 'body', path: '/name' },
    { url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token), payload: '{"status_detail":"x\\u0000"}', location: 'body', path: '/status_detail' },
    { url: '/api/v1/agent/deliveries/lease?x=%00', headers: asAgent(agent.token), payload: '{}', location: 'querystring', path: '/x' },
  ];
  for (const { url, headers, payload, location, path } of cases) {
    const res = await app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': 'application/json' }, payload });
    const body = assertProblem(t, res, 400, 'validation_failed');
    t.same(body.errors, [{ location, path, message: 'must not contain NUL characters or unpaired UTF-16 surrogates' }], `${url} ${payload}`);
  }
  const fine = await app.inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(org.adminKey), payload: { name: 'ok 𝕏', description: 'tabs\tand\nnewlines, é, 🧨' } });
  t.equal(fine.statusCode, 201, 'paired surrogates (emoji), tabs and newlines are fine');
});

/** Raw bytes to the listening app; resolves with everything it wrote before closing the connection. */
async function rawExchange(app: Awaited<ReturnType<typeof build>>, request: string): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.write(request);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('utf8');
}

t.test('a request that is not valid HTTP (conflicting Content-Length) gets a 400 bad_request problem and the connection closes', async (t) => {
  const app = await build(t);
  const text = await rawExchange(app, 'POST /api/v1/organizations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}');
  t.match(text, /^HTTP\/1\.1 400 /);
  t.match(text, /\r\ncontent-type: application\/problem\+json\r\n/i);
  t.match(JSON.parse(text.split('\r\n\r\n')[1]!), { status: 400, code: 'bad_request', type: 'urn:switchboard:problem:bad_request' });
});

t.test('headers over the size limit get a 431 headers_too_large problem', async (t) => {
  const app = await build(t);
  const text = await rawExchange(app, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
  t.match(text, /^HTTP\/1\.1 431 /);
  t.match(JSON.parse(text.split('\r\n\r\n')[1]!), { status: 431, code: 'headers_too_large' });
});

// The error plugin on its own, with routes that fail in every way a route can.
async function pluginApp(t: Tap) {
  const app = Fastify({ logger: false, bodyLimit: 1024 }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(errorsPlugin);
  await app.register(httpPlugin, { config: testConfig() });
  app.post('/things', { schema: { body: z.strictObject({ name: z.string().max(10) }) } }, async () => ({ ok: true }));
  app.get('/boom', async () => {
    throw new Error('secret internals: select * from api_keys');
  });
  // Real database errors, from the test database: what validation cannot catch.
  const { db } = await sharedDatabase();
  app.get('/fk-race', async () => db.execute(sql`insert into oauth_states (id, organization_id, state_hash, api_key_id, code_verifier_ciphertext, expires_at)
    values (${randomUUID()}, ${randomUUID()}, ${randomUUID()}, ${randomUUID()}, 'x', now())`));
  app.get('/out-of-range', async () => db.execute(sql`select '0000-01-01T00:00:00Z'::timestamptz`));
  app.get('/division-by-zero', async () => db.execute(sql`select 1 / (random() * 0)::int`));
  app.get('/db-down', async () => {
    throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
  });
  await app.ready();
  t.after(() => app.close());
  return app;
}

t.test('answers 400 validation_failed listing each invalid field', async (t) => {
  const app = await pluginApp(t);
  const res = await app.inject({ method: 'POST', url: '/things', payload: { name: 'x'.repeat(11), extra: 1 } });
  const body = assertProblem(t, res, 400, 'validation_failed');
  t.ok(Array.isArray(body.errors) && body.errors.length >= 1);
  t.match(body.errors[0], { location: 'body' });
});

t.test('answers 400 invalid_json for a malformed JSON body', async (t) => {
  const app = await pluginApp(t);
  const res = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"name":' });
  assertProblem(t, res, 400, 'invalid_json');
});

t.test('answers 413 payload_too_large over the body limit', async (t) => {
  const app = await pluginApp(t);
  const res = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ name: 'x'.repeat(2000) }) });
  assertProblem(t, res, 413, 'payload_too_large');
});

t.test('answers 415 for a content type no route accepts', async (t) => {
  const app = await pluginApp(t);
  const res = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'text/csv' }, payload: 'a,b' });
  assertProblem(t, res, 415, 'unsupported_media_type');
});

t.test('answers 500 without stack, SQL or message for an unexpected error', async (t) => {
  const app = await pluginApp(t);
  const res = await app.inject({ method: 'GET', url: '/boom' });
  const body = assertProblem(t, res, 500, 'internal_error');
  t.equal(body.detail, 'An unexpected error occurred');
  t.notMatch(res.body, /select|api_keys|secret|stack|\.ts:/);
});

t.test('a row deleted meanwhile (foreign key) is 409 conflict; a value out of the database\'s range is 400; SQL the server got wrong stays 500', async (t) => {
  const app = await pluginApp(t);
  const race = await app.inject({ method: 'GET', url: '/fk-race' });
  const body = assertProblem(t, race, 409, 'conflict');
  t.notMatch(JSON.stringify(body), /oauth_states|organization_id|insert/, 'no SQL in the answer');
  assertProblem(t, await app.inject({ method: 'GET', url: '/out-of-range' }), 400, 'bad_request');
  assertProblem(t, await app.inject({ method: 'GET', url: '/division-by-zero' }), 500, 'internal_error');
});

t.test('answers 503 unavailable with Retry-After when the database cannot be reached', async (t) => {
  const app = await pluginApp(t);
  const res = await app.inject({ method: 'GET', url: '/db-down' });
  assertProblem(t, res, 503, 'unavailable');
  t.equal(res.headers['retry-after'], '5');
  t.notMatch(res.body, /10\.0\.0\.5|ECONNREFUSED/);
});
