// A request answered 503 by its deadline (plugins/deadline.ts) keeps running: what it does still
// happens, its own answer is dropped, and one warning says how it ended, without Fastify's
// "Reply was already sent" or "Promise errored" lines. Google stands in for the slow dependency:
// the embedded database cannot stall.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { googleConnections } from '../../src/db/schema.js';
import { asAgent, bearer, build, captureLogs, createAgent, createOrg, sleep } from '../helper.js';
import { startFakeGoogle } from '../support/fake-google.js';

const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';
const LATE = 'the request finished after its deadline answer (503 unavailable); what it did was not undone';

t.test('a handler that finishes after its 503: its work stands, its answer is dropped, one warning says how it ended', async (t) => {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const logs = captureLogs();
  // The deadline is REQUEST_TIMEOUT_MS less half a second: 1000 ms.
  const app = await build(t, { env: { ...google.env, REQUEST_TIMEOUT_MS: '1500', LOG_LEVEL: 'warn' }, logDestination: logs.destination });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const late = () => logs.lines().filter((line) => line.msg === LATE);
  const untilLate = async (n: number) => {
    for (let i = 0; i < 100 && late().length < n; i++) await sleep(50);
  };
  const expectDeadline = (res: { statusCode: number; headers: Record<string, unknown>; json(): { code?: string } }, name: string) => {
    t.equal(res.statusCode, 503, `${name}: 503 at the deadline`);
    t.equal(res.headers['retry-after'], '5');
    t.equal(res.json().code, 'unavailable');
  };

  // Google answers the code exchange after 1.5 s: the browser gets the 503, the connection is still made.
  google.options.exchangeDelayMs = 1500;
  const start = await app.inject({ method: 'GET', url: '/api/v1/oauth/google/start?redirect=false', headers: bearer(org.adminKey) });
  const callback = await app.inject({ method: 'GET', url: google.consent(start.json().authorization_url).replace('http://127.0.0.1:8080', '') });
  // The browser gets the callback's page, with the code in X-Error-Code, not problem+json.
  t.equal(callback.statusCode, 503, 'the callback: 503 at the deadline');
  t.equal(callback.headers['retry-after'], '5');
  t.equal(callback.headers['x-error-code'], 'unavailable');
  t.match(callback.headers['content-type'], 'text/html');
  t.match(callback.body, 'Google account not connected');
  await untilLate(1);
  t.match(late(), [{ level: 'warn', outcome: 'completed', request_id: callback.headers['x-request-id'] }], 'the callback logs that it completed');
  const [connection] = await app.db.select().from(googleConnections).where(eq(googleConnections.organizationId, org.id));
  t.ok(connection, 'the connection answered 503 was made');

  // A refresh Google refuses after 1.5 s (the refresh token was revoked): the agent gets the 503,
  // the connection is still marked expired, and the failure is logged once.
  await app.db.update(googleConnections).set({ accessTokenExpiresAt: new Date(Date.now() - 1000) }).where(eq(googleConnections.organizationId, org.id));
  google.options.refreshDelayMs = 1500;
  for (const token of google.issuedRefreshTokens) google.invalidRefreshTokens.add(token);
  const broker = await app.inject({ method: 'POST', url: '/api/v1/agent/credentials/google/token', headers: asAgent(agent.token) });
  expectDeadline(broker, 'the token broker');
  await untilLate(2);
  t.match(late()[1], { level: 'warn', outcome: 'failed', request_id: broker.headers['x-request-id'], err: { code: 'reconnect_required' } }, 'the broker logs that it failed, with the error');
  const [expired] = await app.db.select().from(googleConnections).where(eq(googleConnections.organizationId, org.id));
  t.equal(expired?.status, 'expired', 'what the broker found out after its 503 was recorded');

  t.equal(late().length, 2, 'one warning per late request');
  t.notMatch(logs.text(), /already sent|Promise errored/, 'no framework complaint about the dropped answers');
});
