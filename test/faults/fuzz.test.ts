// Bad input over every registered route, property-based (fast-check, seeded and bounded): random
// JSON, wrong types, huge strings, odd unicode, invalid ids, wrong content types, malformed JSON,
// and — over real HTTP — duplicated and conflicting headers. With the right credentials (and
// sometimes the wrong ones), no request may get a 5xx, hang, or reject unhandled, and every error
// is problem+json with a known `code`. FUZZ_SEED reproduces a run; FUZZ_RUNS widens it.
import { once } from 'node:events';
import { connect } from 'node:net';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { PROBLEMS } from '../../src/errors.js';
import {
  asAdmin,
  asAgent,
  bearer,
  build,
  captureLogs,
  createAgent,
  createKey,
  createOrg,
  createWebhook,
  randomIpv6,
} from '../helper.js';
import { startFakeGoogle } from '../support/fake-google.js';
import { rawSignature } from '../support/signing.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_123);
const RUNS = Number(process.env.FUZZ_RUNS ?? 25);
const HANG_MS = 5000;
const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';

type Kind = 'public' | 'platform' | 'org' | 'agent' | 'webhook';

function kindOf(url: string): Kind {
  if (url === '/healthz' || url === '/readyz' || url === '/api/v1/oauth/google/callback') return 'public';
  if (url.startsWith('/api/v1/organizations')) return 'platform';
  if (url.startsWith('/api/v1/hooks/')) return 'webhook';
  if (url === '/api/v1/agent' || url.startsWith('/api/v1/agent/')) return 'agent';
  return 'org';
}

interface Ctx {
  orgId: string;
  adminKey: string;
  readOnlyKey: string;
  spareKeyId: string;
  agent: { id: string; token: string };
  hook: { id: string; secret: string; url: string };
  deliveryId: string;
}

async function context(app: FastifyInstance): Promise<Ctx> {
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const hook = await createWebhook(app, org.adminKey, { agent_id: agent.id });
  const body = '{"fuzz":true}';
  const delivered = await app.inject({ method: 'POST', url: hook.url, headers: { 'content-type': 'application/json', 'x-hub-signature-256': rawSignature(hook.secret, Buffer.from(body)) }, payload: body, remoteAddress: randomIpv6() });
  return {
    orgId: org.id,
    adminKey: org.adminKey,
    readOnlyKey: (await createKey(app, org.adminKey, 'read_only')).key,
    spareKeyId: (await createKey(app, org.adminKey, 'read_only')).id,
    agent,
    hook,
    deliveryId: delivered.json().delivery_id,
  };
}

/** The id of the caller's own resource a path parameter names, so requests get past the lookup. */
function realId(route: string, param: string, ctx: Ctx): string {
  if (param === 'delivery_id' || route.startsWith('/api/v1/agent/deliveries/')) return ctx.deliveryId;
  if (param === 'webhook_id' || route.startsWith('/api/v1/webhooks/')) return ctx.hook.id;
  if (route.startsWith('/api/v1/organizations/')) return ctx.orgId;
  if (route.startsWith('/api/v1/api-keys/')) return ctx.spareKeyId;
  return ctx.agent.id;
}

// --- arbitraries -------------------------------------------------------------------------------

const ODD = [
  '\u0000', '\uD800', '\uDFFF', '\u202E', '\uFEFF', '\u200B', '\u0007', 'é', 'e\u0301', '𝕏', '🧨', '\r\n', '\\', '"', "'", '%', '../',
  '<script>', "1' OR '1'='1", 'null', 'undefined', '-1', '1e309', 'NaN', '0x10', ' ', '', '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001-02-30T25:61:00Z', 'sbk_', 'sba_x_y',
  // Valid ISO 8601 that Postgres cannot store: year 0000, and past 9999 once in UTC.
  '0000-01-01T00:00:00Z', '9999-12-31T23:59:59-05:00', '9999-12-31T23:59:59.999Z',
];
const odd = fc.constantFrom(...ODD);
const huge = fc.nat({ max: 50 }).map((n) => 'x'.repeat(10_000 + n));
const junk = fc.oneof(
  { weight: 3, arbitrary: odd },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.array(odd, { maxLength: 6 }).map((parts) => parts.join('')) },
  { weight: 1, arbitrary: huge },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.uuid() },
);
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  junk,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.oneof(odd, fc.string({ maxLength: 5 })), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
);
const FIELDS = [
  'name', 'slug', 'role', 'expires_at', 'agent_id', 'description', 'metadata', 'enabled', 'disabled', 'signature_scheme', 'limit',
  'lease_seconds', 'grace_seconds', 'overlap_seconds', 'retry_after_seconds', 'error', 'status', 'status_detail', 'version',
  'organization_id', '__proto__', 'constructor',
];
// Objects with the API's own field names and wrong values (keys may repeat: the JSON is written by hand).
const shapedBody = fc
  .array(fc.tuple(fc.constantFrom(...FIELDS), wrongValue), { maxLength: 5 })
  .map((entries) => `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}`).join(',')}}`);
// A valid body per route, to which odd values are then given: these get past validation of the
// other fields and reach the database.
const VALID: Record<string, Record<string, unknown>> = {
  'POST /api/v1/organizations': { name: 'fuzz org' },
  'POST /api/v1/api-keys': { name: 'fuzz key', role: 'read_only' },
  'POST /api/v1/agents': { name: 'fuzz agent', description: 'd', metadata: { a: 1 } },
  'PATCH /api/v1/agents/:id': { description: 'd' },
  'POST /api/v1/agents/:id/token': { grace_seconds: 10 },
  'POST /api/v1/webhooks': { name: 'fuzz hook', description: 'd' },
  'PATCH /api/v1/webhooks/:id': { description: 'd' },
  'POST /api/v1/webhooks/:id/secret': { overlap_seconds: 60 },
  'POST /api/v1/agent/heartbeat': { status_detail: 'ok', version: '1.0' },
  'POST /api/v1/agent/deliveries/lease': { limit: 1 },
  'POST /api/v1/agent/deliveries/:id/nack': { retry_after_seconds: 5, error: 'e' },
};
const oddText = fc
  .array(
    fc.oneof(
      { weight: 2, arbitrary: fc.constantFrom('\u0000', 'x\u0000y', '\uD800', '\uDC00x', '\u202E', '\uFFFF') },
      { weight: 3, arbitrary: odd },
      { weight: 1, arbitrary: fc.string({ maxLength: 3 }) },
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((parts) => parts.join(''));
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: oddText },
  { weight: 1, arbitrary: fc.dictionary(oddText, fc.oneof(oddText, fc.integer()), { minKeys: 1, maxKeys: 2 }) },
  { weight: 1, arbitrary: fc.array(oddText, { maxLength: 2 }) },
);
const nearlyValid = (base: Record<string, unknown>) =>
  fc
    .dictionary(fc.constantFrom(...Object.keys(base)), oddValue, { minKeys: 1, maxKeys: 2 })
    .map((changes) => JSON.stringify({ ...base, ...changes }));
// Nesting deeper than any recursive walk (JSON.stringify included) survives, in the fields that take
// free-form JSON and at the top: refused, never a stack overflow.
const deep = fc.integer({ min: 2_000, max: 12_000 }).chain((depth) =>
  fc.constantFrom(
    `{"name":"deep","metadata":{"d":${'['.repeat(depth)}${']'.repeat(depth)}}}`,
    `{"metadata":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
    `${'['.repeat(depth)}${']'.repeat(depth)}`,
  ),
);
const malformed = fc.constantFrom('{', '{"name":', '[1,2', 'nul', '{"a":1}}', '\uFEFF{}', "{'a':1}", '{"a":1,}', '"\\ud800"', '{"a":"\\u0000"}', '1e99999', '');
const bodyFor = (valid: Record<string, unknown> | undefined) => fc.oneof(
  { weight: valid ? 4 : 0, arbitrary: valid ? nearlyValid(valid) : fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: shapedBody },
  { weight: 2, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 2, arbitrary: malformed },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 1, arbitrary: huge.map((text) => JSON.stringify({ name: text, description: text, metadata: { text } })) },
);
const contentType = fc.oneof(
  { weight: 3, arbitrary: fc.constant('application/json') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      undefined, 'application/json; charset=utf-8', 'application/json; charset=utf-16', 'text/plain',
      'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/merge-patch+json',
      '*/*', 'garbage', '', 'application/json, text/plain',
    ),
  },
);
const ascii = (text: string) => text.replace(/[^\x20-\x7e]/g, '?');
const HEADER_NAMES = [
  'webhook-id', 'webhook-timestamp', 'webhook-signature', 'x-github-delivery', 'idempotency-key', 'x-request-id', 'accept',
  'x-hub-signature-256', 'x-webhook-signature', 'origin', 'content-encoding', 'accept-encoding',
];
const extraHeaders = fc.dictionary(fc.constantFrom(...HEADER_NAMES), junk.map(ascii), { maxKeys: 3 });
const QUERY_KEYS = ['limit', 'cursor', 'status', 'redirect', 'action', 'actor_type', 'since', 'until', 'code', 'state', 'error', 'scope'];
const query = fc.option(fc.dictionary(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 6 })), junk, { maxKeys: 4 }), { nil: undefined });
const credential = fc.constantFrom('right', 'right', 'right', 'right', 'none', 'garbage', 'read_only', 'other_kind');
const paramValue = fc.oneof(
  { weight: 3, arbitrary: fc.constant('real') },
  { weight: 1, arbitrary: fc.uuid() },
  { weight: 3, arbitrary: junk },
  { weight: 1, arbitrary: fc.constantFrom('%FF', '%00', '%C0%AE', '%2e%2e', '%E2%80%AE', '%', '%ZZ').map((raw) => ({ raw })) },
);

// encodeURIComponent throws on lone surrogates; a client would send U+FFFD (or raw bytes, below).
const encode = (value: string) => encodeURIComponent(value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'));
const isDestructive = (method: string, route: string) => method === 'DELETE' || route.endsWith('/token') || route.endsWith('/secret');
const UNKNOWN_ID = '00000000-0000-7000-8000-000000000000';

interface Input {
  params: unknown[];
  query: Record<string, string> | undefined;
  body: string | Buffer | undefined;
  contentType: string | undefined;
  headers: Record<string, string>;
  credential: string;
}

function credentials(kind: Kind, choice: string, ctx: Ctx): Record<string, string> {
  const right = { public: {}, platform: asAdmin, org: bearer(ctx.adminKey), agent: asAgent(ctx.agent.token), webhook: {} }[kind];
  switch (choice) {
    case 'right':
      return right;
    case 'garbage':
      return { authorization: 'Bearer sbk_garbage', 'x-agent-token': 'sba_garbage' };
    case 'read_only':
      return bearer(ctx.readOnlyKey);
    case 'other_kind':
      return kind === 'agent' ? bearer(ctx.adminKey) : asAgent(ctx.agent.token);
    default:
      return {};
  }
}

/** What is wrong with a response, or null. */
function problemWith(route: string, method: string, res: { statusCode: number; headers: Record<string, unknown>; body: string }): string | null {
  if (res.statusCode >= 500) return `answered ${res.statusCode}: ${res.body.slice(0, 300)}`;
  if (res.statusCode < 400 || method === 'HEAD') return null;
  const type = String(res.headers['content-type'] ?? '');
  if (route === '/api/v1/oauth/google/callback' && type.startsWith('text/html')) {
    return String(res.headers['x-error-code'] ?? '') in PROBLEMS ? null : `HTML error page without a known x-error-code`;
  }
  if (!type.startsWith('application/problem+json')) return `${res.statusCode} with content-type ${type}: ${res.body.slice(0, 200)}`;
  let json: { code?: string; status?: number };
  try {
    json = JSON.parse(res.body);
  } catch {
    return `${res.statusCode} problem+json that does not parse`;
  }
  if (!json.code || !(json.code in PROBLEMS)) return `${res.statusCode} with unknown code ${json.code}`;
  if (json.status !== res.statusCode) return `status ${json.status} in the body, ${res.statusCode} on the wire`;
  return null;
}

const withDeadline = <T>(promise: Promise<T>, what: string): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms: ${what}`)), HANG_MS).unref())]);

// --- the run -----------------------------------------------------------------------------------

const rejections: unknown[] = [];
process.on('unhandledRejection', (reason) => rejections.push(reason));

t.test('bad input on every registered route: no 5xx, no hang, every error problem+json with a code', async (t) => {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const logs = captureLogs();
  const app = await build(t, { env: { ...google.env, LOG_LEVEL: 'error' }, logDestination: logs.destination });
  t.comment(`FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}`);

  for (const { method, url: route } of app.knownRoutes) {
    const ctx = await context(app);
    const kind = kindOf(route);
    const params = [...route.matchAll(/:(\w+)/g)].map((match) => match[1]!);
    // Deleting or rotating the context's own resources would only end the run early for that route.
    const destructive = isDestructive(method, route);
    const input: fc.Arbitrary<Input> = fc.record({
      params: fc.array(paramValue, { minLength: params.length, maxLength: params.length }),
      query,
      body: method === 'GET' || method === 'HEAD' ? fc.constant(undefined) : bodyFor(VALID[`${method} ${route}`]),
      contentType,
      headers: extraHeaders,
      credential,
    });
    const details = await fc.check(
      fc.asyncProperty(input, async (input) => {
        let path = route;
        params.forEach((name, i) => {
          const value = input.params[i];
          const segment =
            value === 'real' ? encode(destructive ? UNKNOWN_ID : realId(route, name, ctx)) : typeof value === 'string' ? encode(value) : (value as { raw: string }).raw;
          path = path.replace(`:${name}`, segment);
        });
        const search = input.query ? `?${Object.entries(input.query).map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')}` : '';
        const payload = input.body;
        const headers: Record<string, string> = { ...input.headers, ...credentials(kind, input.credential, ctx) };
        if (input.contentType !== undefined) headers['content-type'] = input.contentType;
        if (kind === 'webhook' && input.credential === 'right') {
          const bytes = payload === undefined ? Buffer.alloc(0) : Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
          headers['x-hub-signature-256'] = rawSignature(ctx.hook.secret, bytes);
          delete headers['webhook-signature'];
        }
        const res = await withDeadline(
          app.inject({ method: method as 'GET', url: path + search, headers, remoteAddress: randomIpv6(), ...(payload === undefined ? {} : { payload }) }),
          `${method} ${path}`,
        );
        const problem = problemWith(route, method, res);
        if (problem) throw new Error(`${method} ${path}${search.slice(0, 200)} → ${problem}`);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    t.notOk(details.failed, `${method} ${route}`, details.failed ? { error: String((details.errorInstance as Error | undefined)?.message).slice(0, 600), report: fc.defaultReportMessage(details)?.slice(0, 3000) } : {});
  }
  t.same(rejections, [], 'no unhandled promise rejection');
  t.notMatch(logs.text(), 'unhandled error', 'no unhandled error was logged');
});

/** One raw HTTP/1.1 exchange, so headers can repeat and conflict the way a real client can send them. */
async function raw(port: number, request: string | Buffer): Promise<{ statusCode: number; headers: Record<string, string>; body: string }> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  // write, not end: Node aborts a request whose client half-closes before the answer.
  socket.write(request);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await withDeadline(once(socket, 'close'), 'raw request');
  const text = Buffer.concat(chunks).toString('utf8');
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const [status = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const at = line.indexOf(':');
    headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
  }
  let payload = rest.join('\r\n\r\n');
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) payload = payload.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '').replace(/\r\n[0-9a-f]+\r\n/gi, '');
  return { statusCode: Number(status.split(' ')[1] ?? 0), headers, body: payload };
}

t.test('duplicated and conflicting headers over real HTTP: no 5xx, no hang, errors are problem+json', async (t) => {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const app = await build(t, { env: google.env });
  const ctx = await context(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const json = '{"name":"dup"}';
  const sig = rawSignature(ctx.hook.secret, Buffer.from(json));
  const variants: Record<string, (path: string) => string> = {
    'two Authorization headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nAuthorization: Bearer sbk_other\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'two X-Agent-Token headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nX-Agent-Token: ${ctx.agent.token}\r\nX-Agent-Token: ${ctx.agent.token}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'two Content-Type headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'two signature and delivery-id headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: ${sig}\r\nX-Hub-Signature-256: ${sig}\r\nX-GitHub-Delivery: a\r\nX-GitHub-Delivery: b\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'conflicting Content-Length headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nContent-Length: 3\r\nConnection: close\r\n\r\n${json}`,
    'Content-Length and Transfer-Encoding together': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`,
    'a chunked body that never ends properly': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n${json}\r\n`,
  };
  for (const { method, url: route } of app.knownRoutes) {
    if (method === 'HEAD') continue;
    const path = route.replace(/:(\w+)/g, (_, name: string) => (isDestructive(method, route) ? UNKNOWN_ID : realId(route, name, ctx)));
    for (const [name, build] of Object.entries(variants)) {
      const request = build(path).replace(/^POST /, `${method} `);
      const res = await raw(port, request);
      const problem = res.statusCode === 0 ? 'no response' : problemWith(route, method, res);
      t.notOk(problem, `${method} ${route}: ${name}`, problem ? { problem } : {});
    }
  }
});
