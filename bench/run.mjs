// `npm run bench`: starts Switchboard (dist/) on real Postgres and a bare Fastify baseline, loads
// both from this process with autocannon, and writes bench/results.json and bench/RESULTS.md.
// It reports; it never fails a build. For profiling, BENCH_ONLY=healthz,auth10,… runs a subset
// (no results written) and BENCH_CPU_PROF=<dir> starts the server with --cpu-prof; summarise the
// profile with `node bench/profile-summary.mjs <dir>/*.cpuprofile`.
import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import postgres from 'postgres';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
// Each scenario is measured in ROUNDS rounds, each beside a run of its baseline: on a machine shared
// with other work the speed of both drifts by tens of percent within minutes, and a ratio of two
// measurements taken seconds apart, the median of five, moves much less than one taken minutes
// apart. Every other round measures the scenario first, so a drift within a round favours neither.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
// Each scenario and its baseline first run unmeasured for this long, so they are measured with their code compiled.
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

/** User + system CPU time in a /proc/<pid>/stat line, in microseconds (clock ticks are 10 ms on Linux). */
function statCpuMicros(stat) {
  const fields = stat.split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** CPU time (user + system) the process has used, in microseconds. */
function cpuMicros(pid) {
  return statCpuMicros(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** The databases the bench's servers use (the second one holds the 100,000 agents). */
const BENCH_DATABASES = new Set([new URL(DATABASE_URL).pathname.slice(1), `${new URL(DATABASE_URL).pathname.slice(1)}_large`]);

/** Whether a PostgreSQL process works for another client: a backend connected to another database. */
function otherClientsBackend(pid) {
  try {
    // "postgres: 15/main: <user> <database> <host(port)> <state>"; background processes name no database.
    const title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    const database = /^postgres: (?:[^:]+: )?\S+ (\S+) \S+\(\d+\)/.exec(title)?.[1];
    return database !== undefined && !BENCH_DATABASES.has(database);
  } catch {
    return false;
  }
}

/**
 * CPU time used so far by each PostgreSQL process on this machine that works for the bench
 * (its backends, the WAL writer, checkpointer, autovacuum), in microseconds by pid; null when none
 * runs here (BENCH_DATABASE_URL on another host). Backends of other databases are other work.
 */
function databaseCpu() {
  const byPid = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    if (stat.includes(' (postgres) ') && !otherClientsBackend(entry)) byPid.set(entry, statCpuMicros(stat));
  }
  return byPid.size > 0 ? byPid : null;
}

/**
 * What the PostgreSQL processes used between two databaseCpu() readings: a process started
 * meanwhile counts whole. One that exited meanwhile took its time with it (the pools keep their
 * connections open while loaded, so that is another client's backend).
 */
function databaseCpuBetween(before, after) {
  if (before === null || after === null) return null;
  let micros = 0;
  for (const [pid, used] of after) micros += used - (before.get(pid) ?? 0);
  return micros;
}

/** The bench's own processes besides this one: both servers (set once they are started). */
const benchPids = [];
const CPUS = cpus().length;

/**
 * CPU time the whole machine spent running processes (user, nice and system; not interrupts),
 * in microseconds. With what the bench's processes and Postgres used subtracted, it is what
 * other work took from the run.
 */
function machineBusyMicros() {
  const [user, nice, system] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 4).map(Number);
  return (user + nice + system) * 10_000;
}

/** CPU time of this process and the servers, in microseconds. */
function benchCpuMicros() {
  const self = process.cpuUsage();
  return self.user + self.system + benchPids.reduce((total, pid) => total + cpuMicros(pid), 0);
}

/** One measured run of `options` against the process `pid`. */
async function measure(pid, options) {
  const stop = rssSampler(pid);
  const cpuBefore = cpuMicros(pid);
  const databaseBefore = databaseCpu();
  const machineBefore = machineBusyMicros();
  const benchBefore = benchCpuMicros();
  const started = performance.now();
  const result = await autocannon({ duration: DURATION_S, connections: CONNECTIONS, ...options });
  const databaseMicros = databaseCpuBetween(databaseBefore, databaseCpu());
  const otherMicros = machineBusyMicros() - machineBefore - (benchCpuMicros() - benchBefore) - (databaseMicros ?? 0);
  // Share of the machine's CPUs that other processes took during the run (ticks of 10 ms: ±1 %).
  const otherCpu = Math.max(0, otherMicros / ((performance.now() - started) * 1000 * CPUS));
  // Server CPU per request: it moves less than requests/s when other work shares the machine.
  const cpuUs = (cpuMicros(pid) - cpuBefore) / Math.max(1, result.requests.total);
  // The database shares the same two cores: what it spends per request is as much the scenario's cost.
  const databaseCpuUs = databaseMicros === null ? null : databaseMicros / Math.max(1, result.requests.total);
  return {
    rps: result.requests.average,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    peak_rss_mb: stop(),
    non_2xx: result.non2xx + result.errors + result.timeouts,
    cpu_us_per_request: cpuUs,
    db_cpu_us_per_request: databaseCpuUs,
    other_cpu: +otherCpu.toFixed(3),
  };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const round1 = (n) => Math.round(n * 10) / 10;
const percent = (share) => `${Math.round(share * 100)} %`;
/** " (lowest–highest)" of per-round ratios, or nothing for a single round or a baseline row. */
const spread = (values) => (values && values.length > 1 ? ` (${Math.min(...values)}–${Math.max(...values)})` : '');

/** The median of several runs; RSS is the peak of all of them, non-2xx their sum. */
function summary(name, runs) {
  return {
    name,
    rps: Math.round(median(runs.map((r) => r.rps))),
    p50_ms: median(runs.map((r) => r.p50_ms)),
    p99_ms: median(runs.map((r) => r.p99_ms)),
    peak_rss_mb: Math.max(...runs.map((r) => r.peak_rss_mb)),
    non_2xx: runs.reduce((sum, r) => sum + r.non_2xx, 0),
    cpu_us_per_request: round1(median(runs.map((r) => r.cpu_us_per_request))),
    db_cpu_us_per_request: runs.some((r) => r.db_cpu_us_per_request === null) ? null : round1(median(runs.map((r) => r.db_cpu_us_per_request))),
  };
}

function print(row, extra = '') {
  process.stdout.write(
    `${row.name.padEnd(44)} ${String(row.rps).padStart(7)} req/s  p50 ${row.p50_ms} ms  p99 ${row.p99_ms} ms  rss ${row.peak_rss_mb} MB  non-2xx ${row.non_2xx}  cpu ${row.cpu_us_per_request} µs/req  db cpu ${row.db_cpu_us_per_request ?? '-'} µs/req${extra}\n`,
  );
}

/**
 * Measures a scenario against its baseline in ROUNDS rounds (baseline then scenario, and the other
 * way round in every other round) and answers
 * the scenario's median figures, the median of the per-round ratios, and the baseline's runs.
 * `onRound` is called before each measured scenario run (stateful scenarios reset their counters).
 */
async function compare(name, pid, options, baseline, { warmUp = true, onRound = () => {} } = {}) {
  if (WARMUP_S > 0) {
    await autocannon({ duration: WARMUP_S, connections: CONNECTIONS, ...baseline.options });
    // Stateful scenarios (lease + ack) count their own progress: they are not warmed up.
    if (warmUp) await autocannon({ duration: WARMUP_S, connections: CONNECTIONS, ...options });
  }
  const runs = [];
  const baselineRuns = [];
  for (let round = 0; round < ROUNDS; round++) {
    const scenarioFirst = round % 2 === 1;
    if (!scenarioFirst) baselineRuns.push(await measure(baseline.pid, baseline.options));
    onRound(round);
    runs.push({ ...(await measure(pid, options)), round });
    if (scenarioFirst) baselineRuns.push(await measure(baseline.pid, baseline.options));
  }
  const ratios = runs.map((r, i) => +(r.rps / baselineRuns[i].rps).toFixed(3));
  // The baseline's CPU per request over the scenario's: the same ratio, less moved by neighbours.
  const cpuRatios = runs.map((r, i) => +(baselineRuns[i].cpu_us_per_request / r.cpu_us_per_request).toFixed(3));
  const row = {
    ...summary(name, runs),
    ratio_to_baseline: +median(ratios).toFixed(3),
    cpu_ratio_to_baseline: +median(cpuRatios).toFixed(3),
    round_ratios: ratios,
    round_cpu_ratios: cpuRatios,
    // The most that other processes took of the machine in one of the scenario's or baseline's runs.
    other_cpu_max: Math.max(...runs.map((r) => r.other_cpu), ...baselineRuns.map((r) => r.other_cpu)),
    runs,
  };
  print(row, `  ×${row.ratio_to_baseline} (cpu ×${row.cpu_ratio_to_baseline}; rounds ${ratios.join(' ')}; other processes ≤ ${percent(row.other_cpu_max)} of the CPUs)`);
  baseline.runs.push(...baselineRuns);
  return row;
}

async function main() {
  await freshDatabase(DATABASE_URL);
  const baseline = start(['bench/baseline.mjs'], { PORT: '18181' });
  const serverEnv = {
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ADMIN_TOKEN,
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    RATE_LIMIT_AGENT_AUTH_MAX: '1000000',
    RATE_LIMIT_AGENT_MAX: '10000000',
    RATE_LIMIT_WEBHOOK_MAX: '10000000',
    DATABASE_POOL_MAX: '20',
  };
  const server = start([...NODE_ARGS, ...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : []), 'dist/server.js'], { ...serverEnv, DATABASE_URL, PORT: '18182' });
  benchPids.push(baseline.child.pid, server.child.pid);
  const base = 'http://127.0.0.1:18182';
  // Never leave a server behind, whatever happens below.
  process.on('exit', () => {
    baseline.child.kill('SIGKILL');
    server.child.kill('SIGKILL');
  });
  await waitFor('http://127.0.0.1:18181/');
  await waitFor(`${base}/readyz`);
  const pid = server.child.pid;

  const api = async (method, path, key, body, origin = base) => {
    const res = await fetch(`${origin}${path}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
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
  let lookup;
  const baselines = {
    get: { pid: baseline.child.pid, options: { url: 'http://127.0.0.1:18181/' }, runs: [] },
    post: { pid: baseline.child.pid, options: { url: 'http://127.0.0.1:18181/', method: 'POST', headers: { 'content-type': 'application/json' }, body: body1k }, runs: [] },
  };
  const auth = { url: `${base}/api/v1/agent/auth`, method: 'POST', headers: { 'x-agent-token': token } };
  if (run('healthz')) rows.healthz = await compare('GET /healthz', pid, { url: `${base}/healthz` }, baselines.get);
  if (run('auth10')) rows.auth10 = await compare(`POST /api/v1/agent/auth (${LEASE_AGENTS} agents)`, pid, auth, baselines.post);

  let lookupAgents = 0;
  if (run('auth100k')) {
    // The same authentication on a second server whose database holds 100,000 agents, measured
    // against the bare baseline like every scenario, then directly against the first server (10
    // agents) in alternating rounds: a ratio of two measurements seconds apart, not of two
    // scenarios minutes apart.
    const largeUrl = `${DATABASE_URL}_large`;
    await freshDatabase(largeUrl);
    const large = start(['dist/server.js'], { ...serverEnv, DATABASE_URL: largeUrl, PORT: '18183' });
    benchPids.push(large.child.pid);
    process.on('exit', () => large.child.kill('SIGKILL'));
    const largeBase = 'http://127.0.0.1:18183';
    await waitFor(`${largeBase}/readyz`);
    const largeOrg = await api('POST', '/api/v1/organizations', ADMIN_TOKEN, { name: 'bench-large' }, largeBase);
    const largeAgent = await api('POST', '/api/v1/agents', largeOrg.api_key.key, { name: 'agent-0' }, largeBase);
    const largeSql = postgres(largeUrl, { max: 1, onnotice: () => {} });
    await largeSql`insert into agents (id, organization_id, name) select gen_random_uuid(), ${largeOrg.organization.id}, 'bulk-' || g from generate_series(1, 99999) g`;
    await largeSql`insert into agent_tokens (id, organization_id, agent_id, public_id, secret_hash)
              select gen_random_uuid(), ${largeOrg.organization.id}, a.id, substr(md5(a.id::text), 1, 16), md5(a.name) || md5(a.name) from agents a where a.name like 'bulk-%'`;
    // As a system that grew to this size looks: vacuumed and analyzed, its pages written out. Left
    // to autovacuum and the checkpointer, that work lands in this scenario's measured rounds.
    await largeSql`vacuum (analyze) agents`;
    await largeSql`vacuum (analyze) agent_tokens`;
    await largeSql`checkpoint`;
    [{ n: lookupAgents }] = await largeSql`select count(*)::int as n from agent_tokens`;
    await largeSql.end();
    const largeAuth = { url: `${largeBase}/api/v1/agent/auth`, method: 'POST', headers: { 'x-agent-token': largeAgent.token } };
    rows.auth100k = await compare(`POST /api/v1/agent/auth (${lookupAgents} agents)`, large.child.pid, largeAuth, baselines.post);
    lookup = await compare(`agent auth at ${lookupAgents} agents vs ${LEASE_AGENTS} (direct)`, large.child.pid, largeAuth, { pid, options: auth, runs: [] });
    large.child.kill('SIGTERM');
    await once(large.child, 'exit');
    benchPids.splice(benchPids.indexOf(large.child.pid), 1);
  }
  if (run('ingest1k')) {
    rows.ingest1k = await compare('webhook ingest 1 KB, signed, durable', pid, { url: `${base}/api/v1/hooks/${hook.webhook.id}`, method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(body1k) }, body: body1k }, baselines.post);
  }
  if (run('ingest512k')) {
    rows.ingest512k = await compare('webhook ingest 512 KB, signed, durable', pid, { url: `${base}/api/v1/hooks/${hook.webhook.id}`, method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(body512k) }, body: body512k, connections: 10 }, baselines.post);
  }
  if (run('lease')) {
    // One webhook per agent, each pre-seeded with more 1 KB deliveries than the rounds can drain;
    // every connection is one agent looping: lease up to LEASE_BATCH, ack each, lease again.
    const perAgent = Math.max(20_000, DURATION_S * ROUNDS * 1000);
    for (const agent of agents) {
      const routed = await api('POST', '/api/v1/webhooks', adminKey, { name: `lease-${agent.agent.id}`, agent_id: agent.agent.id });
      await sql`insert into webhook_deliveries (id, organization_id, webhook_id, delivery_key, content_type, body, size, body_sha256, headers, source_ip)
                select gen_random_uuid(), ${orgId}, ${routed.webhook.id}, 'seed-' || g, 'application/json', convert_to(${body1k}, 'UTF8'), ${Buffer.byteLength(body1k)},
                       ${createHash('sha256').update(body1k).digest('hex')}, '{}'::jsonb, '127.0.0.1'
                  from generate_series(1, ${perAgent}) g`;
    }
    await sql`analyze webhook_deliveries`;
    let nextAgent = 0;
    let round = 0;
    const acked = [];
    const tokenOf = (context) => (context.token ??= agents[nextAgent++ % agents.length].token);
    const ackStep = (i) => ({
      method: 'POST',
      setupRequest: (request, context) => {
        const id = context.ids?.[i];
        if (!id) return null; // fewer leased than LEASE_BATCH: lease again
        return { ...request, path: `/api/v1/agent/deliveries/${id}/ack`, headers: { 'x-agent-token': tokenOf(context) } };
      },
      onResponse: (status) => {
        if (status === 200) acked[round] = (acked[round] ?? 0) + 1;
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
    const requests = await compare(
      `lease + ack, ${LEASE_AGENTS} agents (requests/s)`,
      pid,
      { url: base, connections: LEASE_AGENTS, requests: [leaseStep, ...Array.from({ length: LEASE_BATCH }, (_, i) => ackStep(i))] },
      baselines.post,
      { warmUp: false, onRound: (n) => (round = n) },
    );
    // Per delivery: a lease of up to LEASE_BATCH and one ack each.
    const perDelivery = requests.runs.map((r) => {
      const deliveriesPerS = (acked[r.round] ?? 0) / DURATION_S;
      const perDelivery = (us) => (us === null ? null : (us * r.rps) / Math.max(1, deliveriesPerS));
      return { ...r, rps: deliveriesPerS, cpu_us_per_request: perDelivery(r.cpu_us_per_request), db_cpu_us_per_request: perDelivery(r.db_cpu_us_per_request) };
    });
    rows.lease = {
      ...summary(`lease + ack, ${LEASE_AGENTS} agents (deliveries/s)`, perDelivery),
      requests_rps: requests.rps,
      ratio_to_baseline: +(requests.ratio_to_baseline * median(perDelivery.map((r) => r.rps)) / requests.rps).toFixed(3),
      cpu_ratio_to_baseline: +(requests.cpu_ratio_to_baseline * median(perDelivery.map((r) => r.rps)) / requests.rps).toFixed(3),
      other_cpu_max: requests.other_cpu_max,
    };
    process.stdout.write(`  → ${rows.lease.rps} deliveries leased and acked per second (${requests.rps} requests/s)\n`);
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
  const baselineRows = {
    get: { ...summary('baseline GET (bare Fastify)', baselines.get.runs), ratio_to_baseline: 1, cpu_ratio_to_baseline: 1 },
    post: { ...summary('baseline POST 1 KB (bare Fastify)', baselines.post.runs), ratio_to_baseline: 1, cpu_ratio_to_baseline: 1 },
  };
  const ratios = Object.entries({ ...baselineRows, ...rows }).map(([key, { runs, ...row }]) => ({ key, ...row }));
  const results = {
    measured_at: new Date().toISOString(),
    machine: { cpus: CPUS, node: process.version, loadavg_at_start: LOADAVG },
    duration_s: DURATION_S,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    scenarios: ratios,
    lookup_agents: lookupAgents,
    other_cpu_max: Math.max(lookup.other_cpu_max, ...Object.values(rows).map((row) => row.other_cpu_max)),
    lookup_100k_vs_10: lookup.ratio_to_baseline,
    lookup_100k_vs_10_rounds: lookup.round_ratios,
    lookup_100k_vs_10_cpu: lookup.cpu_ratio_to_baseline,
  };
  writeFileSync('bench/results.json', `${JSON.stringify(results, null, 2)}\n`);
  const table = [
    `Measured ${results.measured_at} on ${results.machine.cpus} cores, Node ${results.machine.node}, load average ${LOADAVG.join(' / ')} at start; other processes took at most ${percent(results.other_cpu_max)} of the CPUs during any measured run; autocannon on the same machine, ${CONNECTIONS} connections (10 for 512 KB and lease + ack).`,
    `Each scenario: ${WARMUP_S} s unmeasured with its baseline (lease + ack: baseline only), then ${ROUNDS} rounds of ${DURATION_S} s of the baseline and ${DURATION_S} s of the scenario (the scenario first in every other round). Figures are medians over the rounds (peak RSS: the highest), ratios the median of the per-round ratios, with the lowest and highest round in brackets (how much the machine moved during the run); baseline rows are the medians of all their runs.`,
    '',
    '| scenario | req/s | × baseline | p50 ms | p99 ms | peak RSS MB | non-2xx | server CPU µs/req | CPU × baseline | database CPU µs/req |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ratios.map((r) => `| ${r.name} | ${r.rps} | ${r.ratio_to_baseline}${spread(r.round_ratios)} | ${r.p50_ms} | ${r.p99_ms} | ${r.peak_rss_mb} | ${r.non_2xx} | ${r.cpu_us_per_request} | ${r.cpu_ratio_to_baseline} | ${r.db_cpu_us_per_request ?? '–'} |`),
    '',
    `Agent-token lookup at ${lookupAgents} agents vs ${LEASE_AGENTS}: ${results.lookup_100k_vs_10}× the requests/s${spread(lookup.round_ratios)}, CPU ×${lookup.cpu_ratio_to_baseline} (a second server on a database of ${lookupAgents} agents against the first, in alternating rounds).`,
    'GET rows are compared with the baseline GET, the others with the baseline 1 KB POST. "CPU × baseline" is the',
    "baseline's server CPU time per request over the scenario's (user + system, from /proc). \"Database CPU\" is what PostgreSQL",
    'used per request meanwhile for the bench (its backends and background processes; – when the database runs elsewhere). The lease + ack row counts',
    `deliveries leased and acked per second (${rows.lease.requests_rps} requests/s: one lease of up to ${LEASE_BATCH}, then one ack each), and its CPU per delivery.`,
    '',
  ].join('\n');
  writeFileSync('bench/RESULTS.md', `# Benchmark results\n\nReproduce: \`npm run bench\` (needs a Postgres server; \`BENCH_DATABASE_URL\`, default \`${'postgres://postgres@127.0.0.1:5432/switchboard_bench'}\`, is dropped and re-created).\n\n${table}`);
  process.stdout.write(`\nwrote bench/results.json and bench/RESULTS.md\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
