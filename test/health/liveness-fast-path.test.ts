// GET /healthz over HTTP is answered before Fastify (src/plugins/liveness-fast-path.ts). These
// tests hold it to the route's answer and check that everything else still reaches Fastify.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { build, captureLogs } from '../helper.js';
import { observations, scrape } from '../support/prometheus.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Headers that differ between any two answers, whoever writes them. */
const PER_RESPONSE = ['date', 'x-request-id', 'connection', 'keep-alive', 'transfer-encoding'];

async function listening(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}

/** Counts the answers the fast path gives: it reports them to app.metrics itself, the route through its hook. */
function fastPathAnswers(app: FastifyInstance): () => number {
  let count = 0;
  const report = app.metrics.requestServed;
  app.metrics.requestServed = (...args) => {
    count += 1;
    report(...args);
  };
  return () => count;
}

function comparable(headers: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers)
      .filter(([name]) => !PER_RESPONSE.includes(name.toLowerCase()))
      .map(([name, value]) => [name.toLowerCase(), String(value)]),
  );
}

t.test('a plain GET /healthz over HTTP gets exactly the route\'s status, body and headers, without going through Fastify', async (t: Test) => {
  const app = await build(t);
  const answered = fastPathAnswers(app);
  const base = await listening(app);
  const route = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(answered(), 0, 'inject goes to the route');

  const res = await fetch(`${base}/healthz`);
  t.equal(answered(), 1, 'the fast path answered');
  t.equal(res.status, route.statusCode);
  t.equal(await res.text(), route.body);
  t.same(comparable(Object.fromEntries(res.headers)), comparable(route.headers), 'the same headers, values included');
  t.match(res.headers.get('x-request-id'), UUID, 'a request id is generated');
  t.equal(res.headers.get('cache-control'), 'no-store');

  const traced = await fetch(`${base}/healthz`, { headers: { 'x-request-id': 'lb-4f2a.9:abc_DEF-1' } });
  t.equal(traced.headers.get('x-request-id'), 'lb-4f2a.9:abc_DEF-1', 'a well-formed request id is echoed');
  const spoofed = await fetch(`${base}/healthz`, { headers: { 'x-request-id': '<script>' } });
  t.match(spoofed.headers.get('x-request-id'), UUID, 'a malformed one is replaced');
  t.equal(answered(), 3);

  const scraped = await scrape(app);
  t.equal(observations(scraped, 'switchboard_http_request_duration_seconds', { method: 'GET', route: '/healthz', status: '200' }), 4, 'fast answers are counted like the route\'s');
});

t.test('any other request reaches Fastify as before', async (t: Test) => {
  const app = await build(t, { env: { CORS_ORIGINS: 'https://console.example.com' } });
  const answered = fastPathAnswers(app);
  const base = await listening(app);

  const query = await fetch(`${base}/healthz?verbose=1`);
  t.equal(query.status, 200, 'a query string: the route');
  const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD: the route');
  const post = await fetch(`${base}/healthz`, { method: 'POST' });
  t.equal(post.status, 405, 'another method: 405 from Fastify');
  t.match(post.headers.get('content-type'), /^application\/problem\+json/);
  const cors = await fetch(`${base}/healthz`, { headers: { origin: 'https://console.example.com' } });
  t.equal(cors.headers.get('access-control-allow-origin'), 'https://console.example.com', 'an Origin header: CORS still applies');
  const ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 200);
  t.equal(answered(), 0, 'none of them took the fast path');
});

t.test('with REQUEST_LOG_INCLUDE_HEALTH=true probes take the route, which logs them', async (t: Test) => {
  const logs = captureLogs();
  const app = await build(t, { env: { REQUEST_LOG_INCLUDE_HEALTH: 'true', LOG_LEVEL: 'info' }, logDestination: logs.destination });
  const answered = fastPathAnswers(app);
  const base = await listening(app);
  t.equal((await fetch(`${base}/healthz`)).status, 200);
  t.equal(answered(), 0);
  t.match(
    logs.lines().filter((line) => line.msg === 'request completed'),
    [{ route: '/healthz', status: 200 }],
  );
});

t.test('once the app is closing, probes go to Fastify, which answers 503', async (t: Test) => {
  const app = await build(t);
  const answered = fastPathAnswers(app);
  await app.ready();
  // The app's own server stops accepting when it closes; a relay hands requests to its listener.
  const relay = createServer((request: IncomingMessage, response: ServerResponse) => app.server.emit('request', request, response));
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  t.teardown(() => relay.close());
  const { port } = relay.address() as { port: number };

  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'open: the fast path answers');
  t.equal(answered(), 1);
  await app.close();
  const closing = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(closing.status, 503, 'closing: Fastify refuses');
  t.equal(answered(), 1, 'the fast path stood aside');
});
