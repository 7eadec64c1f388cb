// `npm run bench`: starts Switchboard (dist/) on real Postgres and a bare Fastify baseline, loads
// both from this process with autocannon, and writes bench/results.json and bench/RESULTS.md.
// It reports; it never fails a build.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import autocannon from 'autocannon';
import postgres from 'postgres';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/switchboard_bench';
const ADMIN_TOKEN = randomBytes(32).toString('base64url');

async function freshDatabase(url) {
  const target = new URL(url);
  const name = target.pathname.slice(1);
  const admin = postgres({ ...Object.fromEntries([['host', target.hostname], ['port', Number(target.port || 5432)], ['username', decodeURIComponent(target.username) || 'postgres'], ['password', decodeURIComponent(target.password) || undefined], ['database', 'postgres']]), max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.unsafe(`create database ${name}`);
  await admin.end();
}

function start(args, env) {
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  return { child, output: () => out };
}

async function waitFor(url) {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`not ready: ${url}`);
}

function rssSampler(pid) {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      peak = Math.max(peak, kb);
    } catch {}
  }, 100);
  return () => {
    clearInterval(timer);
    return Math.round(peak / 1024);
  };
}

async function load(name, pid, options) {
  const stop = rssSampler(pid);
  const result = await autocannon({ duration: DURATION_S, connections: CONNECTIONS, ...options });
  const peakRssMb = stop();
  const non2xx = result.non2xx + result.errors + result.timeouts;
  const row = { name, rps: Math.round(result.requests.average), p50_ms: result.latency.p50, p99_ms: result.latency.p99, peak_rss_mb: peakRssMb, non_2xx: non2xx };
  process.stdout.write(`${name.padEnd(44)} ${String(row.rps).padStart(7)} req/s  p50 ${row.p50_ms} ms  p99 ${row.p99_ms} ms  rss ${peakRssMb} MB  non-2xx ${non2xx}\n`);
  return row;
}

async function main() {
  await freshDatabase(DATABASE_URL);
  const baseline = start(['bench/baseline.mjs'], { PORT: '18181' });
  const server = start(['dist/server.js'], {
    DATABASE_URL,
    HOST: '127.0.0.1',
    PORT: '18182',
    LOG_LEVEL: 'warn',
    ADMIN_TOKEN,
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    RATE_LIMIT_AGENT_AUTH_MAX: '1000000',
    RATE_LIMIT_AGENT_MAX: '10000000',
    RATE_LIMIT_WEBHOOK_MAX: '10000000',
    DATABASE_POOL_MAX: '20',
  });
  const base = 'http://127.0.0.1:18182';
  // Never leave a server behind, whatever happens below.
  process.on('exit', () => {
    baseline.child.kill('SIGKILL');
    server.child.kill('SIGKILL');
  });
  await waitFor('http://127.0.0.1:18181/');
  await waitFor(`${base}/readyz`);
  const pid = server.child.pid;

  const api = async (method, path, key, body) => {
    const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const org = await api('POST', '/api/v1/organizations', ADMIN_TOKEN, { name: 'bench' });
  const adminKey = org.api_key.key;
  const agents = [];
  for (let i = 0; i < 10; i++) agents.push(await api('POST', '/api/v1/agents', adminKey, { name: `agent-${i}` }));
  const hook = await api('POST', '/api/v1/webhooks', adminKey, { name: 'bench', agent_id: agents[0].agent.id });
  const body1k = JSON.stringify({ action: 'opened', padding: 'x'.repeat(1000 - 32) });
  const body512k = JSON.stringify({ action: 'opened', padding: 'x'.repeat(512 * 1024 - 32) });
  const sign = (body) => `sha256=${createHmac('sha256', hook.secret).update(body).digest('hex')}`;
  const token = agents[0].token;

  const rows = [];
  rows.push(await load('baseline GET (bare Fastify)', baseline.child.pid, { url: 'http://127.0.0.1:18181/' }));
  rows.push(await load('baseline POST 1 KB (bare Fastify)', baseline.child.pid, { url: 'http://127.0.0.1:18181/', method: 'POST', headers: { 'content-type': 'application/json' }, body: body1k }));
  rows.push(await load('GET /healthz', pid, { url: `${base}/healthz` }));
  rows.push(await load('POST /api/v1/agent/auth (10 agents)', pid, { url: `${base}/api/v1/agent/auth`, method: 'POST', headers: { 'x-agent-token': token } }));

  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  const orgId = org.organization.id;
  await sql`insert into agents (id, organization_id, name) select gen_random_uuid(), ${orgId}, 'bulk-' || g from generate_series(1, 99990) g`;
  await sql`insert into agent_tokens (id, organization_id, agent_id, public_id, secret_hash)
            select gen_random_uuid(), ${orgId}, a.id, substr(md5(a.id::text), 1, 16), md5(a.name) || md5(a.name) from agents a where a.name like 'bulk-%'`;
  await sql`analyze agents`;
  await sql`analyze agent_tokens`;
  const [{ n: lookupAgents }] = await sql`select count(*)::int as n from agent_tokens`;
  await sql.end();
  rows.push(await load(`POST /api/v1/agent/auth (${lookupAgents} agents)`, pid, { url: `${base}/api/v1/agent/auth`, method: 'POST', headers: { 'x-agent-token': token } }));
  rows.push(await load('webhook ingest 1 KB, signed, durable', pid, { url: `${base}/api/v1/hooks/${hook.webhook.id}`, method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(body1k) }, body: body1k }));
  rows.push(await load('webhook ingest 512 KB, signed, durable', pid, { url: `${base}/api/v1/hooks/${hook.webhook.id}`, method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(body512k) }, body: body512k, connections: 10 }));

  baseline.child.kill('SIGTERM');
  server.child.kill('SIGTERM');
  await Promise.all([once(baseline.child, 'exit'), once(server.child, 'exit')]);

  const get = rows[0].rps;
  const post = rows[1].rps;
  const auth10 = rows[3].rps;
  const ratios = rows.map((row, i) => ({ ...row, ratio_to_baseline: +(row.rps / (i === 0 || i === 2 ? get : post)).toFixed(3) }));
  const results = {
    measured_at: new Date().toISOString(),
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    duration_s: DURATION_S,
    connections: CONNECTIONS,
    scenarios: ratios,
    lookup_agents: lookupAgents,
    lookup_100k_vs_10: +(rows[4].rps / auth10).toFixed(3),
  };
  writeFileSync('bench/results.json', `${JSON.stringify(results, null, 2)}\n`);
  const table = [
    `Measured ${results.measured_at} on ${results.machine.cpus} cores, Node ${results.machine.node}; autocannon, ${CONNECTIONS} connections (10 for 512 KB), ${DURATION_S} s each, load generator on the same machine.`,
    '',
    '| scenario | req/s | × baseline | p50 ms | p99 ms | peak RSS MB | non-2xx |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ratios.map((r) => `| ${r.name} | ${r.rps} | ${r.ratio_to_baseline} | ${r.p50_ms} | ${r.p99_ms} | ${r.peak_rss_mb} | ${r.non_2xx} |`),
    '',
    `Agent-token lookup at ${lookupAgents} agents vs 10: ${results.lookup_100k_vs_10}× the requests/s.`,
    'GET rows are compared with the baseline GET, the others with the baseline 1 KB POST.',
    '',
  ].join('\n');
  writeFileSync('bench/RESULTS.md', `# Benchmark results\n\nReproduce: \`npm run bench\` (needs a Postgres server; \`BENCH_DATABASE_URL\`, default \`${'postgres://postgres@127.0.0.1:5432/switchboard_bench'}\`, is dropped and re-created).\n\n${table}`);
  process.stdout.write(`\nwrote bench/results.json and bench/RESULTS.md\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
