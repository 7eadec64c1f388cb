// What /metrics exposes: well-formed Prometheus text, request histograms labelled by route
// template (never a raw URL, id or token), the database pool size, process metrics, and every
// metric name the operations runbook's alerts use.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { bearer, build, createAgent, createOrg, TEST_DATABASE_URL } from '../helper.js';
import { family, observations, sample, samplesOf, scrape } from '../support/prometheus.js';

const DURATION = 'switchboard_http_request_duration_seconds';

t.test('the exposition parses, and every switchboard metric has help and a type', async (t) => {
  const app = await build(t);
  const scraped = await scrape(app);
  t.same(scraped.malformed, [], 'every sample line is well-formed');
  const ours = scraped.families.filter((f) => f.name.startsWith('switchboard_'));
  t.ok(ours.length >= 12);
  for (const f of ours) {
    t.ok(f.help.length > 10, `${f.name} has help`);
    t.match(f.type, /^(COUNTER|GAUGE|HISTOGRAM)$/, `${f.name} is typed`);
  }
  t.equal(family(scraped, DURATION)?.type, 'HISTOGRAM');
  for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
    t.ok(family(scraped, name), `process metric ${name}`);
  }
  const driver = TEST_DATABASE_URL ? 'postgres' : 'embedded';
  t.equal(sample(scraped, 'switchboard_db_pool_max_connections', { driver }), TEST_DATABASE_URL ? 10 : 1, 'the pool size of the database in use');
});

t.test('requests are counted and timed by method, route template and status — never by raw URL, id or token', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const missing = '0190a3f0-0000-7000-8000-000000000000';
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey) })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/agents/${agent.id}`, headers: bearer(org.adminKey) })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/agents/${missing}`, headers: bearer(org.adminKey) })).statusCode, 404);
  t.equal((await app.inject({ method: 'GET', url: `/no/such/${agent.id}?token=${org.adminKey}` })).statusCode, 404);
  t.equal((await app.inject({ method: 'PUT', url: '/healthz' })).statusCode, 405);

  const scraped = await scrape(app);
  t.equal(observations(scraped, DURATION, { method: 'GET', route: '/api/v1/agents/:id', status: '200' }), 2);
  t.equal(observations(scraped, DURATION, { method: 'GET', route: '/api/v1/agents/:id', status: '404' }), 1);
  t.equal(observations(scraped, DURATION, { method: 'POST', route: '/api/v1/agents', status: '201' }), 1);
  t.equal(observations(scraped, DURATION, { method: 'GET', route: '(unmatched)', status: '404' }), 1, 'unknown URLs share one series');
  t.equal(observations(scraped, DURATION, { method: 'PUT', route: '(unmatched)', status: '405' }), 1);
  const series = samplesOf(scraped, `${DURATION}_count`);
  t.ok(series.length >= 5);
  t.ok(series.every((s) => s.labels.route === '(unmatched)' || s.labels.route?.startsWith('/')), 'routes are templates');
  t.same(new Set(series.flatMap((s) => Object.keys(s.labels))), new Set(['method', 'route', 'status']), 'no other labels');
  for (const secret of [agent.id, missing, org.id, org.adminKey, agent.token, '/no/such']) t.notMatch(scraped.text, secret, 'no id, URL or token in the exposition');
  const labels = { method: 'GET', route: '/api/v1/agents/:id', status: '200' };
  t.equal(sample(scraped, `${DURATION}_bucket`, { ...labels, le: '+Inf' }), 2);
  t.ok(sample(scraped, `${DURATION}_sum`, labels) > 0, 'durations are recorded');
});

t.test('every metric named in the operations runbook is exposed', async (t) => {
  const app = await build(t);
  const runbook = await readFile(new URL('../../docs/operations/README.md', import.meta.url), 'utf8');
  const start = runbook.indexOf('## Monitoring');
  t.ok(start >= 0, 'the runbook has a Monitoring section');
  const monitoring = runbook.slice(start, runbook.indexOf('\n## ', start + 1));
  const names = new Set([...monitoring.matchAll(/\b((?:switchboard|nodejs|process)_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|count|sum)$/, '')));
  t.ok(names.size >= 10, 'the runbook names the metrics');
  const scraped = await scrape(app);
  for (const name of names) t.ok(family(scraped, name), name);
  for (const alert of ['increase(switchboard_agent_auth_failures_total[1h])', 'switchboard_oauth_refreshes_total{outcome="failure"}', `${DURATION}_count{status="503"}`]) {
    t.match(monitoring, alert, `the runbook has the alert on ${alert}`);
  }
});
