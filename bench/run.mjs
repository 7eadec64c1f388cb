// `npm run bench`: starts Switchboard (dist/) on real Postgres and a bare Fastify baseline, loads
// both from this process with autocannon, and writes bench/results.json and bench/RESULTS.md.
// It reports; it never fails a build. For profiling, BENCH_ONLY=healthz,auth10,… runs a subset
// (no results written) and BENCH_CPU_PROF=<dir> starts the server with --cpu-prof; summarise the
// profile with `node bench/profile-summary.mjs <dir>/*.cpuprofile`.
import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import postgres from 'postgres';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
// Each scenario first runs unmeasured for this long, so it is measured with its code compiled
// (a server fresh from start-up measured its first scenario up to twice as slow).
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 2);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/switchboard_bench';
const ADMIN_TOKEN = randomBytes(32).toString('base64url');
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null;
const CPU_PROF = process.env.BENCH_CPU_PROF;
// Extra node flags for the server, e.g. BENCH_NODE_ARGS='--trace-gc' with BENCH_SERVER_OUT=<file> for its stdout.
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const LEASE_AGENTS = 10;
const LEASE_BATCH = 10;
const LOADAVG = loadavg().map((n) => n.toFixed(2));

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

/** CPU time (user + system) the process has used, in microseconds (clock ticks are 10 ms on Linux). */
function cpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function load(name, pid, options) {
  // Stateful scenarios (lease + ack) count their own progress: they are not warmed up.
  if (WARMUP_S > 0 && !options.requests) await autocannon({ duration: WARMUP_S, connections: CONNECTIONS, ...options });
  const stop = rssSampler(pid);
  const cpuBefore = cpuMicros(pid);
  const result = await autocannon({ duration: DURATION_S, connections: CONNECTIONS, ...options });
  // Server CPU per request: unlike requests/s, it hardly moves when other work shares the machine.
  const cpuUsPerRequest = Math.round(((cpuMicros(pid) - cpuBefore) / Math.max(1, result.requests.total)) * 10) / 10;
  const peakRssMb = stop();
  const non2xx = result.non2xx + result.errors + result.timeouts;
  const row = { name, rps: Math.round(result.requests.average), p50_ms: result.latency.p50, p99_ms: result.latency.p99, peak_rss_mb: peakRssMb, non_2xx: non2xx, cpu_us_per_request: cpuUsPerRequest };
  process.stdout.write(`${name.padEnd(44)} ${String(row.rps).padStart(7)} req/s  p50 ${row.p50_ms} ms  p99 ${row.p99_ms} ms  rss ${peakRssMb} MB  non-2xx ${non2xx}  cpu ${cpuUsPerRequest} µs/req\n`);
  return row;
}

async function main() {
  await freshDatabase(DATABASE_URL);
  const baseline = start(['bench/baseline.mjs'], { PORT: '18181' });
  const server = start([...NODE_ARGS, ...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : []), 'dist/server.js'], {
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
  const orgId = org.organization.id;
  const agents = [];
  for (let i = 0; i < LEASE_AGENTS; i++) agents.push(await api('POST', '/api/v1/agents', adminKey, { name: `agent-${i}` }));
  // The ingest webhook is routed to no agent, so its deliveries stay out of the lease scenario.
  const hook = await api('POST', '/api/v1/webhooks', adminKey, { name: 'bench' });
  const body1k = JSON.stringify({ action: 'opened', padding: 'x'.repeat(1000 - 32) });
  const body512k = JSON.stringify({ action: 'opened', padding: 'x'.repeat(512 * 1024 - 32) });
  const sign = (body) => `sha256=${createHmac('sha256', hook.secret).update(body).digest('hex')}`;
  const token = agents[0].token;
  const run = (key) => !ONLY || ONLY.has(key);
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });

  const rows = {};
  if (run('baseline')) {
    rows.get = await load('baseline GET (bare Fastify)', baseline.child.pid, { url: 'http://127.0.0.1:18181/' });
    rows.post = await load('baseline POST 1 KB (bare Fastify)', baseline.child.pid, { url: 'http://127.0.0.1:18181/', method: 'POST', headers: { 'content-type': 'application/json' }, body: body1k });
  }
  if (run('healthz')) rows.healthz = await load('GET /healthz', pid, { url: `${base}/healthz` });
  if (run('auth10')) rows.auth10 = await load(`POST /api/v1/agent/auth (${LEASE_AGENTS} agents)`, pid, { url: `${base}/api/v1/agent/auth`, method: 'POST', headers: { 'x-agent-token': token } });

  let lookupAgents = 0;
  if (run('auth100k')) {
    await sql`insert into agents (id, organization_id, name) select gen_random_uuid(), ${orgId}, 'bulk-' || g from generate_series(1, 99990) g`;
    await sql`insert into agent_tokens (id, organization_id, agent_id, public_id, secret_hash)
              select gen_random_uuid(), ${orgId}, a.id, substr(md5(a.id::text), 1, 16), md5(a.name) || md5(a.name) from agents a where a.name like 'bulk-%'`;
    await sql`analyze agents`;
    await sql`analyze agent_tokens`;
    [{ n: lookupAgents }] = await sql`select count(*)::int as n from agent_tokens`;
    rows.auth100k = await load(`POST /api/v1/agent/auth (${lookupAgents} agents)`, pid, { url: `${base}/api/v1/agent/auth`, method: 'POST', headers: { 'x-agent-token': token } });
  }
  if (run('ingest1k')) {
    rows.ingest1k = await load('webhook ingest 1 KB, signed, durable', pid, { url: `${base}/api/v1/hooks/${hook.webhook.id}`, method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(body1k) }, body: body1k });
  }
  if (run('ingest512k')) {
    rows.ingest512k = await load('webhook ingest 512 KB, signed, durable', pid, { url: `${base}/api/v1/hooks/${hook.webhook.id}`, method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(body512k) }, body: body512k, connections: 10 });
  }
  if (run('lease')) {
    // One webhook per agent, each pre-seeded with more 1 KB deliveries than a run can drain;
    // every connection is one agent looping: lease up to LEASE_BATCH, ack each, lease again.
    const perAgent = Math.max(20_000, DURATION_S * 4000);
    for (const agent of agents) {
      const routed = await api('POST', '/api/v1/webhooks', adminKey, { name: `lease-${agent.agent.id}`, agent_id: agent.agent.id });
      await sql`insert into webhook_deliveries (id, organization_id, webhook_id, delivery_key, content_type, body, size, body_sha256, headers, source_ip)
                select gen_random_uuid(), ${orgId}, ${routed.webhook.id}, 'seed-' || g, 'application/json', convert_to(${body1k}, 'UTF8'), ${Buffer.byteLength(body1k)},
                       ${createHash('sha256').update(body1k).digest('hex')}, '{}'::jsonb, '127.0.0.1'
                  from generate_series(1, ${perAgent}) g`;
    }
    await sql`analyze webhook_deliveries`;
    let nextAgent = 0;
    let acked = 0;
    const tokenOf = (context) => (context.token ??= agents[nextAgent++ % agents.length].token);
    const ackStep = (i) => ({
      method: 'POST',
      setupRequest: (request, context) => {
        const id = context.ids?.[i];
        if (!id) return null; // fewer leased than LEASE_BATCH: lease again
        return { ...request, path: `/api/v1/agent/deliveries/${id}/ack`, headers: { 'x-agent-token': tokenOf(context) } };
      },
      onResponse: (status) => {
        if (status === 200) acked += 1;
      },
    });
    const leaseStep = {
      method: 'POST',
      path: '/api/v1/agent/deliveries/lease',
      setupRequest: (request, context) => ({ ...request, headers: { 'x-agent-token': tokenOf(context), 'content-type': 'application/json' } }),
      body: JSON.stringify({ limit: LEASE_BATCH, lease_seconds: 300 }),
      onResponse: (status, body, context) => {
        context.ids = status === 200 ? JSON.parse(body).data.map((d) => d.id) : [];
      },
    };
    const row = await load(`lease + ack, ${LEASE_AGENTS} agents (deliveries/s)`, pid, {
      url: base,
      connections: LEASE_AGENTS,
      requests: [leaseStep, ...Array.from({ length: LEASE_BATCH }, (_, i) => ackStep(i))],
    });
    const deliveriesPerS = Math.round(acked / DURATION_S);
    // Per delivery, like the row's rate: a lease of up to 10 and one ack each.
    rows.lease = { ...row, requests_rps: row.rps, rps: deliveriesPerS, cpu_us_per_request: Math.round(((row.cpu_us_per_request * row.rps) / Math.max(1, deliveriesPerS)) * 10) / 10 };
    process.stdout.write(`  → ${rows.lease.rps} deliveries leased and acked per second (${row.rps} requests/s)\n`);
  }
  await sql.end();

  baseline.child.kill('SIGTERM');
  server.child.kill('SIGTERM');
  await Promise.all([once(baseline.child, 'exit'), once(server.child, 'exit')]);
  if (process.env.BENCH_SERVER_OUT) writeFileSync(process.env.BENCH_SERVER_OUT, server.output());

  if (ONLY) {
    process.stdout.write('\nBENCH_ONLY set: results not written\n');
    return;
  }
  const ratios = Object.entries(rows).map(([key, row]) => {
    const baselineRow = key === 'get' || key === 'healthz' ? rows.get : rows.post;
    return {
      key,
      ...row,
      ratio_to_baseline: +(row.rps / baselineRow.rps).toFixed(3),
      // The baseline's CPU per request over this scenario's: the same ratio, less moved by noisy neighbours.
      cpu_ratio_to_baseline: +(baselineRow.cpu_us_per_request / row.cpu_us_per_request).toFixed(3),
    };
  });
  const results = {
    measured_at: new Date().toISOString(),
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version, loadavg_at_start: LOADAVG },
    duration_s: DURATION_S,
    connections: CONNECTIONS,
    scenarios: ratios,
    lookup_agents: lookupAgents,
    lookup_100k_vs_10: +(rows.auth100k.rps / rows.auth10.rps).toFixed(3),
  };
  writeFileSync('bench/results.json', `${JSON.stringify(results, null, 2)}\n`);
  const table = [
    `Measured ${results.measured_at} on ${results.machine.cpus} cores, Node ${results.machine.node}, load average ${LOADAVG.join(' / ')} at start; autocannon, ${CONNECTIONS} connections (10 for 512 KB and lease + ack), ${DURATION_S} s each after ${WARMUP_S} s unmeasured (lease + ack: no warm-up), load generator on the same machine.`,
    '',
    '| scenario | req/s | × baseline | p50 ms | p99 ms | peak RSS MB | non-2xx | server CPU µs/req | CPU × baseline |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ratios.map((r) => `| ${r.name} | ${r.rps} | ${r.ratio_to_baseline} | ${r.p50_ms} | ${r.p99_ms} | ${r.peak_rss_mb} | ${r.non_2xx} | ${r.cpu_us_per_request} | ${r.cpu_ratio_to_baseline} |`),
    '',
    `Agent-token lookup at ${lookupAgents} agents vs ${LEASE_AGENTS}: ${results.lookup_100k_vs_10}× the requests/s.`,
    'GET rows are compared with the baseline GET, the others with the baseline 1 KB POST. "CPU × baseline" is the',
    "baseline's server CPU time per request over the scenario's (user + system, from /proc): requests/s moves with",
    'whatever else shares the machine, CPU per request much less. The lease + ack row counts',
    `deliveries leased and acked per second (${rows.lease.requests_rps} requests/s: one lease of up to ${LEASE_BATCH}, then one ack each).`,
    '',
  ].join('\n');
  writeFileSync('bench/RESULTS.md', `# Benchmark results\n\nReproduce: \`npm run bench\` (needs a Postgres server; \`BENCH_DATABASE_URL\`, default \`${'postgres://postgres@127.0.0.1:5432/switchboard_bench'}\`, is dropped and re-created).\n\n${table}`);
  process.stdout.write(`\nwrote bench/results.json and bench/RESULTS.md\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
