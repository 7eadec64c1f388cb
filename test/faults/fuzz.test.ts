// Property-based input over every registered route (issue #9): fast-check, seeded and bounded.
//
// Each route in app.knownRoutes gets a context of its own: an organization with an admin and a
// read-only key, an agent, a webhook routed to it, a delivery the agent holds a lease on, and, for
// the Google token broker and OAuth status, a connected Google account (fake Google). Routes that
// delete, rotate or consume what they act on (DELETE, agent token and webhook secret rotation,
// ack/nack, the OAuth callback, disconnecting Google) get a fresh resource per run (FRESH), so
// every run acts on a real row. Two kinds of runs per route:
//  - valid-ish: the route's own valid request (its credential, known query keys only, the body its
//    schema accepts) with fuzzed values the validators accept: odd but storable unicode (direction
//    marks and overrides, combining marks, emoji sequences, zero-width characters), strings at
//    their length limit, whitespace the schemas trim, boundary numbers and timestamps. Every
//    answer must be a success, and the names, descriptions and slugs sent must come back.
//  - bad: a valid-ish request with one to three things broken: the credential, a path parameter
//    (junk, invalid ids, bad percent-encoding), the query (junk values, unknown or repeated keys),
//    the body (random JSON, wrong types, out-of-range values, huge strings, NUL and lone
//    surrogates, malformed JSON, deep nesting, bytes), the content type, extra headers, the client
//    address.
// Either way: no 5xx, no hang (HANG_MS), no unhandled rejection, and every error is problem+json
// with a known `code`. Then reach: every route answered at least one success (REACH_EXCEPTIONS
// names the routes that cannot, and why), and the app has at least ROUTE_FLOOR routes. A second
// test sends duplicated and conflicting headers to every route over real HTTP.
//
// Reproduce: every route runs on a seed of its own derived from FUZZ_SEED (printed on failure);
// FUZZ_SEED=<seed> FUZZ_ROUTE='POST /api/v1/agents' reruns one route with the same draws,
// FUZZ_RUNS=<n> (runs per route and kind, default 25) widens the search.
// The pieces (routes, contexts, values, requests, answers, reach) live in test/support/fuzz/.
import { once } from 'node:events';
import { connect } from 'node:net';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { build, captureLogs } from '../helper.js';
import { startFakeGoogle, type FakeGoogle } from '../support/fake-google.js';
import { problemWith, validAnswerProblem } from '../support/fuzz/answers.js';
import { context, contextId, FRESH, NEEDS_GOOGLE, type Ctx } from '../support/fuzz/context.js';
import { count, REACH_EXCEPTIONS, reach } from '../support/fuzz/reach.js';
import { noUnhandledRejections } from '../support/fuzz/rejections.js';
import { badDraft, send, validDraft, withDeadline, type Draft } from '../support/fuzz/requests.js';
import { routeOf, seedFor, type Mode, type Route } from '../support/fuzz/routes.js';
import { ONLY, RUNS, SEED } from '../support/fuzz/settings.js';
import { rawSignature } from '../support/signing.js';

const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';
/** The app registers 81 routes (HEAD included) today: fewer than this means routes went missing. */
const ROUTE_FLOOR = 75;

async function fuzzRoute(t: Test, app: FastifyInstance, google: FakeGoogle, route: Route) {
  const ctx = await context(app, google, { connectGoogle: NEEDS_GOOGLE.has(route.spec) });
  const freshen = FRESH[route.spec];
  const arbitraries: Record<Mode, fc.Arbitrary<Draft>> = { 'valid-ish': validDraft(route, ctx), bad: badDraft(route, ctx) };
  for (const mode of ['valid-ish', 'bad'] as const) {
    const seed = seedFor(route, mode);
    const details = await fc.check(
      fc.asyncProperty(arbitraries[mode], async (draft) => {
        const fresh = freshen ? await freshen(app, google, ctx) : {};
        const { res, sent } = await send(app, route, ctx, draft, fresh);
        count(route, res.statusCode);
        const problem = problemWith(route, res) ?? (mode === 'valid-ish' ? validAnswerProblem(route, res, draft) : null);
        if (problem) throw new Error(`${sent} → ${problem}`);
      }),
      { seed, numRuns: RUNS, endOnFailure: true },
    );
    t.notOk(
      details.failed,
      `${mode} input`,
      details.failed
        ? {
            error: String((details.errorInstance as Error | undefined)?.message).slice(0, 800),
            seed,
            reproduce: `FUZZ_SEED=${SEED} FUZZ_ROUTE='${route.key}' FUZZ_RUNS=${RUNS} npx tap test/faults/fuzz.test.ts --disable-coverage`,
            report: fc.defaultReportMessage(details)?.slice(0, 2000),
          }
        : {},
    );
  }
  await noUnhandledRejections(t, route.key);
}

t.test('valid-ish and bad input on every registered route: no 5xx, no hang, every error problem+json, every route reached', async (t) => {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const logs = captureLogs();
  const app = await build(t, { env: { ...google.env, LOG_LEVEL: 'error' }, logDestination: logs.destination });
  t.comment(`FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}${ONLY ? ` FUZZ_ROUTE=${ONLY}` : ''}`);
  const routes = app.knownRoutes.map(({ method, url }) => routeOf(method, url)).filter((route) => !ONLY || route.key === ONLY);

  for (const route of routes) await t.test(route.key, (t) => fuzzRoute(t, app, google, route));

  await t.test('reach: every route answered a success', async (t) => {
    if (!ONLY) t.ok(routes.length >= ROUTE_FLOOR, `${routes.length} routes registered, at least ${ROUTE_FLOOR} expected`);
    t.ok(routes.length > 0, 'routes were fuzzed');
    let reached = 0;
    for (const route of routes) {
      const counts = reach.get(route.key) ?? { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
      const exception = REACH_EXCEPTIONS[route.url];
      const ok = exception ? counts['3xx'] > 0 : counts['2xx'] > 0;
      if (counts['2xx'] > 0) reached += 1;
      t.ok(ok, exception ? `${route.key}: a 3xx (no 2xx by design: ${exception})` : `${route.key}: a 2xx`, ok ? {} : { counts });
    }
    t.comment(`${reached} of ${routes.length} routes answered a 2xx`);
  });
  await noUnhandledRejections(t, 'whole run');
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

const UNKNOWN_ID = '00000000-0000-7000-8000-000000000000';

t.test('duplicated and conflicting headers over real HTTP: no 5xx, no hang, errors are problem+json', async (t) => {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const logs = captureLogs();
  const app = await build(t, { env: { ...google.env, LOG_LEVEL: 'error' }, logDestination: logs.destination });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const json = '{"name":"dup"}';
  const variants = (ctx: Ctx, sig: string): Record<string, (path: string) => string> => ({
    'two Authorization headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nAuthorization: Bearer sbk_other\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'two X-Agent-Token headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nX-Agent-Token: ${ctx.agent.token}\r\nX-Agent-Token: ${ctx.agent.token}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'two Content-Type headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'two signature and delivery-id headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: ${sig}\r\nX-Hub-Signature-256: ${sig}\r\nX-GitHub-Delivery: a\r\nX-GitHub-Delivery: b\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n${json}`,
    'conflicting Content-Length headers': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nContent-Length: 3\r\nConnection: close\r\n\r\n${json}`,
    'Content-Length and Transfer-Encoding together': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`,
    'a chunked body that never ends properly': (path) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ctx.adminKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n${json}\r\n`,
  });
  const ctx = await context(app, google, { connectGoogle: false });
  const requests = variants(ctx, rawSignature(ctx.hook.secret, Buffer.from(json)));
  for (const { method, url } of app.knownRoutes) {
    if (method === 'HEAD') continue;
    const route = routeOf(method, url);
    // Routes that would delete or use up the context's resources get an id that names nothing.
    const path = url.replace(/:(\w+)|\*/g, (_, name: string | undefined) => (FRESH[route.spec] ? UNKNOWN_ID : contextId(route, name ?? '*', ctx)));
    for (const [name, request] of Object.entries(requests)) {
      const res = await raw(port, request(path).replace(/^POST /, `${method} `));
      const problem = res.statusCode === 0 ? 'no response' : problemWith(route, res);
      t.notOk(problem, `${method} ${url}: ${name}`, problem ? { problem } : {});
    }
  }
  await noUnhandledRejections(t, 'raw HTTP');
  t.notMatch(logs.text(), 'unhandled error', 'no unhandled error was logged');
});
