import t from 'tap';
import { build } from '../helper.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

t.test('generates a request id when none is sent and returns it', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/healthz' });
  t.match(String(res.headers['x-request-id']), UUID);
});

t.test('echoes a well-formed incoming X-Request-Id', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'lb-4f2a.9:abc_DEF-1' } });
  t.equal(res.headers['x-request-id'], 'lb-4f2a.9:abc_DEF-1');
});

t.test('replaces a malformed or oversized X-Request-Id instead of echoing it', async (t) => {
  const app = await build(t);
  for (const bad of ['<script>', 'a b', 'x'.repeat(129)]) {
    const res = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': bad } });
    t.match(String(res.headers['x-request-id']), UUID, `replaced ${bad.slice(0, 10)}`);
  }
});

t.test('sends security headers tuned for a JSON API and Cache-Control: no-store', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.headers['cache-control'], 'no-store');
  t.equal(res.headers['x-content-type-options'], 'nosniff');
  t.equal(res.headers['x-frame-options'], 'DENY');
  t.match(String(res.headers['content-security-policy']), /default-src 'none'/);
  t.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/);
  t.match(String(res.headers['strict-transport-security']), /max-age=31536000/);
  t.equal(res.headers['referrer-policy'], 'no-referrer');
  t.notOk(res.headers['x-powered-by']);
});

t.test('refusals carry the same security headers as answers; /docs swaps in a policy of its own and keeps the rest', async (t) => {
  const app = await build(t);
  const security = (headers: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(headers).filter(([name]) => /^(content-security-policy|strict-transport-security|x-content-type-options|x-frame-options|referrer-policy|cross-origin-|x-dns-prefetch|x-download|x-permitted|x-xss|origin-agent)/.test(name)));
  const ok = security((await app.inject({ method: 'GET', url: '/healthz' })).headers);
  t.same(
    Object.keys(ok).sort(),
    ['content-security-policy', 'cross-origin-resource-policy', 'referrer-policy', 'strict-transport-security', 'x-content-type-options', 'x-frame-options'],
    "OWASP's set for REST APIs; none of helmet's headers for pages or retired browsers",
  );
  for (const [label, request] of [
    ['unknown route', { method: 'GET', url: '/nope' }],
    ['no credentials', { method: 'GET', url: '/api/v1/agents' }],
    ['bad JSON', { method: 'POST', url: '/api/v1/organizations', headers: { 'content-type': 'application/json' }, payload: '{' }],
  ] as const) {
    const res = await app.inject(request);
    t.ok(res.statusCode >= 400, label);
    t.same(security(res.headers), ok, label);
  }
  const docs = security((await app.inject({ method: 'GET', url: '/docs' })).headers);
  t.match(docs['content-security-policy'], "script-src 'self'");
  t.match({ ...docs, 'content-security-policy': null }, { ...ok, 'content-security-policy': null }, "the API's other headers, the same");
  t.equal(docs['cross-origin-opener-policy'], 'same-origin', "and helmet's headers for pages");
});

t.test('sends no CORS headers when CORS_ORIGINS is empty', async (t) => {
  const app = await build(t);
  const res = await app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } });
  t.notOk(res.headers['access-control-allow-origin']);
});

t.test('allows only the origins in CORS_ORIGINS', async (t) => {
  const app = await build(t, { env: { CORS_ORIGINS: 'https://console.example.com' } });
  const allowed = await app.inject({
    method: 'OPTIONS',
    url: '/healthz',
    headers: { origin: 'https://console.example.com', 'access-control-request-method': 'GET' },
  });
  t.equal(allowed.headers['access-control-allow-origin'], 'https://console.example.com');
  const denied = await app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://evil.example' } });
  t.notOk(denied.headers['access-control-allow-origin']);
});

t.test('with CORS on, unknown paths are still 404 and an OPTIONS that is not a preflight gets a problem, not CORS', async (t) => {
  const app = await build(t, { env: { CORS_ORIGINS: 'https://console.example.com' } });
  const unknown = await app.inject({ method: 'GET', url: '/api/v1/nothing-here' });
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json().code, 'not_found');
  t.notOk(unknown.headers.allow);
  const wrongMethod = await app.inject({ method: 'PUT', url: '/healthz' });
  t.equal(wrongMethod.statusCode, 405);
  t.equal(wrongMethod.headers.allow, 'GET, HEAD', 'OPTIONS is not listed as a method of the resource');

  for (const headers of [{}, { origin: 'https://console.example.com' }, { 'access-control-request-method': 'GET' }]) {
    const bare = await app.inject({ method: 'OPTIONS', url: '/healthz', headers });
    t.equal(bare.statusCode, 405, `OPTIONS ${JSON.stringify(headers)}`);
    t.match(bare.headers['content-type'], 'application/problem+json');
    t.equal(bare.json().code, 'method_not_allowed');
    t.notOk(bare.headers['access-control-allow-methods']);
  }
  const bareUnknown = await app.inject({ method: 'OPTIONS', url: '/nothing-here' });
  t.equal(bareUnknown.statusCode, 404);
  t.equal(bareUnknown.json().code, 'not_found');

  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/api/v1/agents',
    headers: { origin: 'https://console.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });
  t.equal(preflight.statusCode, 204);
  t.equal(preflight.headers['access-control-allow-origin'], 'https://console.example.com');
  t.match(preflight.headers['access-control-allow-methods'], 'POST');
  const simple = await app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://console.example.com' } });
  t.equal(simple.headers['access-control-allow-origin'], 'https://console.example.com', 'simple requests still get CORS headers');
});
