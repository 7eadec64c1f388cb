import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { rowsOf } from '../../src/db/client.js';
import { googleConnections } from '../../src/db/schema.js';
import { asAgent, bearer, build, captureLogs, createAgent, createKey, createOrg, TEST_DATABASE_URL } from '../helper.js';
import { startFakeGoogle } from '../support/fake-google.js';

const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';

async function setup(t: Test, extraEnv: Record<string, string> = {}) {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const logs = captureLogs();
  const app = await build(t, { env: { ...google.env, LOG_LEVEL: 'debug', ...extraEnv }, logDestination: logs.destination });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const start = async (key = org.adminKey) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/oauth/google/start?redirect=false', headers: bearer(key) });
    if (res.statusCode !== 200) throw new Error(res.body);
    return res.json() as { authorization_url: string; state: string; expires_at: string };
  };
  const callback = (url: string, target = app) => target.inject({ method: 'GET', url: url.replace('http://127.0.0.1:8080', '') });
  const connect = async () => {
    const { authorization_url } = await start();
    const res = await callback(google.consent(authorization_url));
    if (res.statusCode !== 200) throw new Error(res.body);
  };
  const broker = (token = agent.token) => app.inject({ method: 'POST', url: '/api/v1/agent/credentials/google/token', headers: asAgent(token) });
  return { google, app, org, agent, start, callback, connect, broker, logs };
}

t.test('start → consent → callback → connected → broker → refresh on expiry → revoke on disconnect', async (t) => {
  const { google, app, org, start, callback, broker, logs } = await setup(t);
  const redirect = await app.inject({ method: 'GET', url: '/api/v1/oauth/google/start', headers: bearer(org.adminKey) });
  t.equal(redirect.statusCode, 302);
  const location = new URL(String(redirect.headers.location));
  t.equal(location.origin + location.pathname, `${google.url}/auth`);
  for (const [name, value] of [['access_type', 'offline'], ['prompt', 'consent'], ['include_granted_scopes', 'true'], ['code_challenge_method', 'S256'], ['redirect_uri', CALLBACK]] as const) {
    t.equal(location.searchParams.get(name), value, name);
  }
  t.ok((location.searchParams.get('state') ?? '').length >= 43, 'state carries at least 32 random bytes');

  const started = await start();
  const done = await callback(google.consent(started.authorization_url));
  t.equal(done.statusCode, 200);
  t.match(done.headers['content-type'], 'text/html');
  t.match(done.body, 'Google account connected');

  const status = (await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google;
  t.match(status, { state: 'connected', connected: true, account_email: 'ops@example.com', missing_scopes: [] });

  const first = await broker();
  t.equal(first.statusCode, 200);
  t.match(first.json(), { access_token: google.issuedAccessTokens[0], account_email: 'ops@example.com' });
  t.equal(google.refreshCalls, 0, 'a fresh token is handed out as is');

  await app.db.update(googleConnections).set({ accessTokenExpiresAt: new Date(Date.now() + 60_000) }).where(eq(googleConnections.organizationId, org.id));
  const refreshed = await broker();
  t.equal(refreshed.statusCode, 200);
  t.equal(google.refreshCalls, 1, 'under 5 minutes left: refreshed');
  t.equal(refreshed.json().access_token, google.issuedAccessTokens.at(-1));

  const refreshToken = google.issuedRefreshTokens.at(-1)!;
  const columns = rowsOf<{ t: string }>(await app.db.execute(sql`select row_to_json(g)::text as t from google_connections g union all select row_to_json(s)::text from oauth_states s union all select row_to_json(a)::text from audit_events a`));
  t.notOk(columns.some((row) => row.t.includes(refreshToken)), 'the refresh token plaintext is nowhere in the database');
  t.notOk(columns.some((row) => google.issuedAccessTokens.some((token) => row.t.includes(token))), 'nor any access token');
  t.notMatch(logs.text(), refreshToken, 'nor in the logs');

  const gone = await app.inject({ method: 'DELETE', url: '/api/v1/oauth/google', headers: bearer(org.adminKey) });
  t.equal(gone.statusCode, 204);
  t.same(google.revoked, [refreshToken], 'revoked at Google');
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google.state, 'not_connected');
  t.equal((await broker()).json().code, 'oauth_not_connected');
  const actions = (await app.inject({ method: 'GET', url: '/api/v1/audit-events', headers: bearer(org.adminKey) })).json().data.map((e: { action: string }) => e.action);
  for (const action of ['oauth.connected', 'oauth.token_issued', 'oauth.disconnected']) t.ok(actions.includes(action), action);
});

t.test('a state works once, only before it expires, and only through the server that knows it', async (t) => {
  const { google, app, org, start, callback } = await setup(t);
  const { authorization_url } = await start();
  const url = google.consent(authorization_url);
  t.equal((await callback(url)).statusCode, 200);
  const replay = await callback(url);
  t.equal(replay.statusCode, 400);
  t.equal(replay.headers['x-error-code'], 'invalid_state');
  t.match(replay.body, 'invalid_state');

  const expiring = await start();
  // Only this organization's state: on Postgres other test files share the database and hold live states.
  await app.db.execute(sql`update oauth_states set expires_at = now() - interval '1 second' where organization_id = ${org.id}`);
  t.equal((await callback(google.consent(expiring.authorization_url))).headers['x-error-code'], 'invalid_state', 'expired');
  t.equal((await callback('/api/v1/oauth/google/callback?code=x&state=made-up')).headers['x-error-code'], 'invalid_state', 'unknown');

  // Refused by validation before the handler runs: the browser still gets the page, not problem+json.
  const oversized = await callback(`/api/v1/oauth/google/callback?code=x&state=${'s'.repeat(600)}`);
  t.equal(oversized.statusCode, 400);
  t.equal(oversized.headers['x-error-code'], 'validation_failed');
  t.match(oversized.headers['content-type'], 'text/html');
  t.match(oversized.body, 'Google account not connected');
});

t.test('a state ends with the authority of the key that started it: revoked or expired first, the callback refuses it', async (t) => {
  const { google, app, org, start, callback } = await setup(t);
  const second = await createKey(app, org.adminKey, 'admin');
  const countStates = async () => rowsOf<{ n: number }>(await app.db.execute(sql`select count(*)::int as n from oauth_states where api_key_id = ${second.id}`))[0]!.n;

  const pending = google.consent((await start(second.key)).authorization_url);
  t.equal(await countStates(), 1);
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${second.id}`, headers: bearer(org.adminKey) })).statusCode, 204);
  t.equal(await countStates(), 0, 'revoking the key deleted its pending states');
  const afterRevoke = await callback(pending);
  t.equal(afterRevoke.statusCode, 400);
  t.equal(afterRevoke.headers['x-error-code'], 'invalid_state');

  // Expiry is not an event: the state survives it, and the callback checks the key itself.
  const third = await createKey(app, org.adminKey, 'admin');
  const expiring = google.consent((await start(third.key)).authorization_url);
  await app.db.execute(sql`update api_keys set expires_at = now() - interval '1 second' where id = ${third.id}`);
  const afterExpiry = await callback(expiring);
  t.equal(afterExpiry.statusCode, 400);
  t.equal(afterExpiry.headers['x-error-code'], 'invalid_state');
  t.match(afterExpiry.body, 'no longer valid');
  t.equal(google.issuedRefreshTokens.length, 0, 'no code was exchanged with Google');

  const status = (await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google;
  t.equal(status.state, 'not_connected', 'nothing was connected');
  const failures = (await app.inject({ method: 'GET', url: '/api/v1/audit-events', headers: bearer(org.adminKey) })).json().data.filter((e: { action: string }) => e.action.startsWith('oauth.'));
  t.same(failures, [], 'and nothing was recorded as connected');

  // Revoked while Google was answering: checked again before saving, and the grant given back.
  const fourth = await createKey(app, org.adminKey, 'admin');
  const racing = google.consent((await start(fourth.key)).authorization_url);
  google.options.exchangeDelayMs = 600;
  const answer = callback(racing);
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${fourth.id}`, headers: bearer(org.adminKey) })).statusCode, 204);
  const raced = await answer;
  google.options.exchangeDelayMs = 0;
  t.equal(raced.statusCode, 400);
  t.equal(raced.headers['x-error-code'], 'invalid_state');
  t.equal(google.issuedRefreshTokens.length, 1, 'Google did exchange the code');
  t.same(google.revoked, google.issuedRefreshTokens, 'and got its grant back');
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google.state, 'not_connected');

  // A live key still works.
  t.equal((await callback(google.consent((await start()).authorization_url))).statusCode, 200);
});

t.test('HEAD neither creates a state nor consumes one', async (t) => {
  const { google, app, org, start, callback } = await setup(t);
  const count = async () => rowsOf<{ n: number }>(await app.db.execute(sql`select count(*)::int as n from oauth_states where organization_id = ${org.id}`))[0]!.n;
  const head = await app.inject({ method: 'HEAD', url: '/api/v1/oauth/google/start', headers: bearer(org.adminKey) });
  t.equal(head.statusCode, 405);
  t.equal(head.headers.allow, 'GET');
  t.equal(await count(), 0, 'no state was created');
  const url = google.consent((await start()).authorization_url);
  const scanned = await app.inject({ method: 'HEAD', url: url.replace('http://127.0.0.1:8080', '') });
  t.equal(scanned.statusCode, 405);
  t.equal(await count(), 1, 'the state is still there');
  t.equal((await callback(url)).statusCode, 200, 'and the browser completes the connection');
});

t.test('a state created through one instance is consumed through another exactly once', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (two instances on one database)' }, async (t) => {
  const { google, start, callback } = await setup(t);
  const other = await build(t, { database: 'own', env: google.env });
  const url = google.consent((await start()).authorization_url);
  const results = await Promise.all([callback(url, other), callback(url, other)]);
  t.same(results.map((r) => r.statusCode).sort(), [200, 400]);
});

t.test('declined consent, a missing refresh token and a refused exchange each get their code', async (t) => {
  const { google, start, callback } = await setup(t);
  const declined = await start();
  const denied = await callback(`/api/v1/oauth/google/callback?error=access_denied&state=${declined.state}`);
  t.equal(denied.statusCode, 400);
  t.equal(denied.headers['x-error-code'], 'access_denied');

  google.options.omitRefreshToken = true;
  const noRefresh = await callback(google.consent((await start()).authorization_url));
  t.equal(noRefresh.statusCode, 400);
  t.equal(noRefresh.headers['x-error-code'], 'no_refresh_token');
  google.options.omitRefreshToken = false;

  const { state } = await start();
  const refused = await callback(`/api/v1/oauth/google/callback?code=not-issued&state=${state}`);
  t.equal(refused.statusCode, 502);
  t.equal(refused.headers['x-error-code'], 'token_exchange_failed');
});

t.test('a PKCE verifier that no longer decrypts answers 503 encryption_key_unavailable, and Google is not asked', async (t) => {
  const { app, org, google, start, callback } = await setup(t);
  const [first, second] = [await start(), await start()];
  // The second state's verifier under the first state's row binding: it fails the check.
  const [row] = rowsOf<{ c: string }>(await app.db.execute(sql`select code_verifier_ciphertext as c from oauth_states where organization_id = ${org.id} order by created_at limit 1`));
  await app.db.execute(sql`update oauth_states set code_verifier_ciphertext = ${row!.c} where organization_id = ${org.id} and code_verifier_ciphertext <> ${row!.c}`);
  const exchanged = google.issuedRefreshTokens.length;
  const res = await callback(google.consent(second.authorization_url));
  t.equal(res.statusCode, 503);
  t.equal(res.headers['x-error-code'], 'encryption_key_unavailable');
  t.equal(google.issuedRefreshTokens.length, exchanged, 'no code was exchanged');
  t.equal((await callback(google.consent(first.authorization_url))).statusCode, 200, 'the intact state still connects');
});

t.test('two callbacks completing an organization\'s first connection at once leave one working connection', async (t) => {
  const { app, org, google, start, callback, broker } = await setup(t);
  const urls = [google.consent((await start()).authorization_url), google.consent((await start()).authorization_url)];
  const answers = await Promise.all(urls.map((url) => callback(url)));
  t.same(answers.map((res) => res.statusCode), [200, 200], 'both consents connect; the later one replaces the earlier');
  const [{ n }] = rowsOf<{ n: number }>(await app.db.execute(sql`select count(*)::int as n from google_connections where organization_id = ${org.id}`)) as [{ n: number }];
  t.equal(n, 1);
  await app.db.update(googleConnections).set({ accessTokenExpiresAt: new Date(Date.now() - 1000) }).where(eq(googleConnections.organizationId, org.id));
  const token = await broker();
  t.equal(token.statusCode, 200, `the stored tokens decrypt and refresh: ${token.body}`);
  t.equal((await app.inject({ method: 'DELETE', url: '/api/v1/oauth/google', headers: bearer(org.adminKey) })).statusCode, 204, 'and it can be disconnected');
});

t.test('a disconnect waits for Google\'s revocation GOOGLE_OAUTH_TIMEOUT_MS at most, then deletes the credentials anyway', async (t) => {
  const { app, org, google, connect } = await setup(t, { GOOGLE_OAUTH_TIMEOUT_MS: '1000' });
  await connect();
  google.options.revokeDelayMs = 4000;
  const gone = await app.inject({ method: 'DELETE', url: '/api/v1/oauth/google', headers: bearer(org.adminKey) });
  t.equal(gone.statusCode, 204, gone.body);
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google.state, 'not_connected');
  const events = (await app.inject({ method: 'GET', url: '/api/v1/audit-events?action=oauth.disconnected', headers: bearer(org.adminKey) })).json().data;
  t.match(events, [{ details: { revoked_at_google: false } }], 'audited as not confirmed by Google');
});

t.test('a connection whose refresh token no longer decrypts can still be disconnected: deleted, audited as not revoked', async (t) => {
  const { app, org, google, connect, broker } = await setup(t);
  await connect();
  const [connection] = await app.db.select().from(googleConnections).where(eq(googleConnections.organizationId, org.id));
  await app.db.update(googleConnections).set({ refreshTokenCiphertext: connection!.accessTokenCiphertext! }).where(eq(googleConnections.organizationId, org.id));
  const gone = await app.inject({ method: 'DELETE', url: '/api/v1/oauth/google', headers: bearer(org.adminKey) });
  t.equal(gone.statusCode, 204, gone.body);
  t.same(google.revoked, [], 'nothing to revoke: the token is not known');
  t.equal((await app.db.select().from(googleConnections).where(eq(googleConnections.organizationId, org.id))).length, 0, 'the credentials are deleted');
  t.equal((await broker()).json().code, 'oauth_not_connected');
  const events = (await app.inject({ method: 'GET', url: '/api/v1/audit-events?action=oauth.disconnected', headers: bearer(org.adminKey) })).json().data;
  t.match(events, [{ details: { revoked_at_google: false, refresh_token_decrypted: false } }]);
});

t.test('a missing scope shows in the status', async (t) => {
  const { google, app, org, start, callback } = await setup(t);
  const res = await callback(google.consent((await start()).authorization_url, { scope: 'openid email https://www.googleapis.com/auth/calendar' }));
  t.equal(res.statusCode, 200);
  const status = (await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google;
  t.equal(status.state, 'missing_scope');
  t.same(status.missing_scopes, ['https://www.googleapis.com/auth/gmail.modify']);
});

t.test('another organization cannot use a state it did not start', async (t) => {
  const { google, app, start, callback } = await setup(t);
  const other = await createOrg(app);
  const url = google.consent((await start()).authorization_url);
  t.equal((await callback(url)).statusCode, 200);
  const otherStatus = (await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(other.adminKey) })).json().google;
  t.equal(otherStatus.state, 'not_connected', 'the connection belongs to the organization that started the flow');
});

t.test('invalid_grant marks the connection expired (409 reconnect_required); transient errors leave it intact (502)', async (t) => {
  const { google, app, org, connect, broker } = await setup(t);
  await connect();
  await app.db.update(googleConnections).set({ accessTokenExpiresAt: new Date(Date.now() - 1000) }).where(eq(googleConnections.organizationId, org.id));
  google.options.failRefresh = true;
  const transient = await broker();
  t.equal(transient.statusCode, 502);
  t.equal(transient.json().code, 'token_refresh_failed');
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google.connected, true);
  google.options.failRefresh = false;
  google.invalidRefreshTokens.add(google.issuedRefreshTokens.at(-1)!);
  const dead = await broker();
  t.equal(dead.statusCode, 409);
  t.equal(dead.json().code, 'reconnect_required');
  const status = (await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google;
  t.match(status, { state: 'expired', connected: false, last_error: /invalid_grant/ });
  t.equal((await broker()).statusCode, 409, 'stays expired without calling Google again');
});

t.test('20 concurrent broker requests on an expired token cause exactly one refresh', async (t) => {
  const { google, app, org, connect, broker } = await setup(t);
  await connect();
  await app.db.update(googleConnections).set({ accessTokenExpiresAt: new Date(Date.now() - 1000) }).where(eq(googleConnections.organizationId, org.id));
  google.options.refreshDelayMs = 100;
  const results = await Promise.all(Array.from({ length: 20 }, () => broker()));
  t.same([...new Set(results.map((r) => r.statusCode))], [200]);
  t.equal(google.refreshCalls, 1);
  t.equal(new Set(results.map((r) => r.json().access_token)).size, 1, 'everyone got the same fresh token');
});

t.test('a refresh token that no longer decrypts is a key problem: 503 encryption_key_unavailable, Google not called, the connection untouched', async (t) => {
  const { google, app, org, connect, broker } = await setup(t);
  await connect();
  const [connection] = await app.db.select().from(googleConnections).where(eq(googleConnections.organizationId, org.id));
  // Another row's ciphertext (the access token's) fails the check against this row: as after a
  // restore under another key, or an old key dropped before `keys rotate` finished.
  await app.db
    .update(googleConnections)
    .set({ refreshTokenCiphertext: connection!.accessTokenCiphertext!, accessTokenExpiresAt: new Date(Date.now() - 1000) })
    .where(eq(googleConnections.organizationId, org.id));
  const res = await broker();
  t.equal(res.statusCode, 503, res.body);
  t.equal(res.json().code, 'encryption_key_unavailable');
  t.equal(google.refreshCalls, 0, 'Google was not asked');
  const [after] = await app.db.select().from(googleConnections).where(eq(googleConnections.organizationId, org.id));
  t.match(after, { status: 'connected', lastError: null }, 'not recorded as a Google failure');
});

t.test('a Google that does not answer holds the refresh (its row lock and one connection) for GOOGLE_OAUTH_TIMEOUT_MS at most', async (t) => {
  const { google, app, org, connect, broker } = await setup(t, { GOOGLE_OAUTH_TIMEOUT_MS: '1000' });
  await connect();
  await app.db.update(googleConnections).set({ accessTokenExpiresAt: new Date(Date.now() - 1000) }).where(eq(googleConnections.organizationId, org.id));
  google.options.refreshDelayMs = 4000;
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 5 }, () => broker()));
  const elapsed = Date.now() - started;
  t.same([...new Set(results.map((r) => r.json().code))], ['token_refresh_failed'], 'every request is told Google did not issue a token');
  t.equal(results[0]!.headers['retry-after'], '5');
  t.equal(google.refreshCalls, 1, 'the concurrent requests shared one refresh');
  t.ok(elapsed < 3500, `answered when Google's budget ran out, not when Google answered (${elapsed} ms)`);
  // The lock was given back: with Google answering again, the next request refreshes at once.
  google.options.refreshDelayMs = 0;
  const next = await broker();
  t.equal(next.statusCode, 200, next.body);
  t.equal(google.refreshCalls, 2);
  const [after] = await app.db.select().from(googleConnections).where(eq(googleConnections.organizationId, org.id));
  t.equal(after!.status, 'connected', 'a slow Google does not end the connection');
});

t.test('without Google configuration: start and broker answer 503 oauth_not_configured, status says not_configured', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const start = await app.inject({ method: 'GET', url: '/api/v1/oauth/google/start', headers: bearer(org.adminKey) });
  t.equal(start.statusCode, 503);
  t.equal(start.json().code, 'oauth_not_configured');
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/credentials/google/token', headers: asAgent(agent.token) })).json().code, 'oauth_not_configured');
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/oauth/status', headers: bearer(org.adminKey) })).json().google.state, 'not_configured');
});
