// OAuth refresh and broker metrics against the loopback fake Google: cached and refreshed
// issuances, refresh successes, and refresh failures by reason (the runbook alerts on any).
import { eq } from 'drizzle-orm';
import t from 'tap';
import { googleConnections } from '../../src/db/schema.js';
import { asAgent, bearer, build, createAgent, createOrg } from '../helper.js';
import { startFakeGoogle } from '../support/fake-google.js';
import { sample, scrape } from '../support/prometheus.js';

const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';
const REFRESHES = 'switchboard_oauth_refreshes_total';
const ISSUANCES = 'switchboard_broker_issuances_total';

t.test('broker issuances count by source; refreshes by outcome, failures by reason', async (t) => {
  const google = await startFakeGoogle(CALLBACK);
  t.teardown(() => google.close());
  const app = await build(t, { env: google.env });
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const started = await app.inject({ method: 'GET', url: '/api/v1/oauth/google/start?redirect=false', headers: bearer(org.adminKey) });
  const callback = await app.inject({ method: 'GET', url: google.consent(started.json().authorization_url).replace('http://127.0.0.1:8080', '') });
  t.equal(callback.statusCode, 200);
  const broker = () => app.inject({ method: 'POST', url: '/api/v1/agent/credentials/google/token', headers: asAgent(agent.token) });
  const expire = () => app.db.update(googleConnections).set({ accessTokenExpiresAt: new Date(Date.now() - 1000) }).where(eq(googleConnections.organizationId, org.id));

  t.equal((await broker()).statusCode, 200, 'cached token');
  await expire();
  t.equal((await broker()).statusCode, 200, 'refreshed token');
  let scraped = await scrape(app);
  t.equal(sample(scraped, ISSUANCES, { source: 'cached' }), 1);
  t.equal(sample(scraped, ISSUANCES, { source: 'refreshed' }), 1);
  t.equal(sample(scraped, REFRESHES, { outcome: 'success' }), 1);
  t.equal(sample(scraped, REFRESHES, { outcome: 'failure', reason: 'unavailable' }), 0, 'no failure yet: the alert stays quiet');
  t.equal(sample(scraped, REFRESHES, { outcome: 'failure', reason: 'invalid_grant' }), 0);

  await expire();
  google.options.failRefresh = true;
  t.equal((await broker()).statusCode, 502);
  google.options.failRefresh = false;
  google.invalidRefreshTokens.add(google.issuedRefreshTokens.at(-1)!);
  t.equal((await broker()).statusCode, 409);
  t.equal((await broker()).statusCode, 409, 'an expired connection is not refreshed again');

  scraped = await scrape(app);
  t.equal(sample(scraped, REFRESHES, { outcome: 'failure', reason: 'unavailable' }), 1);
  t.equal(sample(scraped, REFRESHES, { outcome: 'failure', reason: 'invalid_grant' }), 1);
  t.equal(sample(scraped, REFRESHES, { outcome: 'success' }), 1);
  t.equal(sample(scraped, ISSUANCES, { source: 'cached' }) + sample(scraped, ISSUANCES, { source: 'refreshed' }), 2, 'failures issue nothing');
  for (const token of [...google.issuedAccessTokens, ...google.issuedRefreshTokens]) t.notMatch(scraped.text, token);
});
