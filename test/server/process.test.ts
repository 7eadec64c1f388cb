// The built server as a process: start-up errors, signals, and the embedded database on disk.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADMIN_TOKEN } from '../helper.js';
import { copyTemplateInto } from '../support/pglite-template.js';
import { runCommand, startServer } from '../support/process.js';

// Every server and CLI command here is a process that opens PGlite from disk, most of them on a
// new DATA_DIR (initdb in WebAssembly): slow on a loaded machine, not stuck.
t.setTimeout(300_000);

t.test('a bad configuration fails start-up with one message naming every variable and no stack trace', async (t) => {
  const { code, stderr, stdout } = await runCommand(['dist/server.js'], { PORT: 'abc', TRUST_PROXY: 'true', DATA_DIR: 'memory://' });
  t.equal(code, 1);
  t.match(stderr, /^Invalid configuration:/);
  t.match(stderr, '- PORT: ');
  t.match(stderr, '- TRUST_PROXY: ');
  t.notMatch(stderr, /\n\s+at /, 'no stack frames');
  t.equal(stdout, '');
});

t.test('SIGTERM drains and exits 0; the embedded database keeps its data across restarts', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-data-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const env = { DATA_DIR: dataDir, LOG_LEVEL: 'info', ADMIN_TOKEN };
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

  const first = await startServer(env);
  const ready = (await (await fetch(`${first.url}/readyz`)).json()) as any;
  t.equal(ready.status, 'ready');
  const created = (await (await fetch(`${first.url}/api/v1/organizations`, { method: 'POST', headers: admin, body: '{"name":"Persisted"}' })).json()) as any;
  t.equal(created.organization.name, 'Persisted');
  t.match(first.output(), 'DATABASE_URL is not set: using the embedded Postgres');
  t.equal(await first.stop('SIGTERM'), 0, 'exit code 0 after SIGTERM');
  t.match(first.output(), 'shutdown complete');

  const second = await startServer(env);
  const again = (await (await fetch(`${second.url}/readyz`)).json()) as any;
  t.equal(again.checks.migrations.applied, ready.checks.migrations.applied, 'migrations were not re-applied');
  const kept = await fetch(`${second.url}/api/v1/organizations/${created.organization.id}`, { headers: admin });
  t.equal(kept.status, 200, 'the organization survived the restart');
  const key = await fetch(`${second.url}/api/v1/organization`, { headers: { authorization: `Bearer ${created.api_key.key}` } });
  t.equal(key.status, 200, 'and so did its API key');
  t.equal(await second.stop('SIGINT'), 0, 'exit code 0 after SIGINT');
});

t.test('a second server on the same DATA_DIR is refused with a clear message', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-data-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  await copyTemplateInto(dataDir);
  const first = await startServer({ DATA_DIR: dataDir });
  t.teardown(() => first.stop());
  const second = await runCommand(['dist/server.js'], { DATA_DIR: dataDir, PORT: '0' });
  t.equal(second.code, 1);
  t.match(second.stderr, `is in use by process ${first.child.pid}`);
});

t.test('the CLI bootstraps an organization on the embedded database and prints its admin key once', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-data-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const early = await runCommand(['dist/cli/index.js', 'org', 'list'], { DATA_DIR: dataDir });
  t.equal(early.code, 1, 'listing a database never migrated is refused');
  t.match(early.stderr, /migrations are pending: run `npm run migrate` first/);
  t.notMatch(early.stderr, 'Failed query', 'not a raw query error');
  const created = await runCommand(['dist/cli/index.js', 'org', 'create', '--name', 'Acme Corp'], { DATA_DIR: dataDir });
  t.equal(created.code, 0, created.stderr);
  const id = /organization: ([0-9a-f-]{36}) \(acme-corp\)/.exec(created.stdout)?.[1];
  const key = /admin API key: (sbk_\S+)/.exec(created.stdout)?.[1];
  t.ok(id && key, 'prints the id and the key');
  const listed = await runCommand(['dist/cli/index.js', 'org', 'list'], { DATA_DIR: dataDir });
  t.match(listed.stdout, `${id}  acme-corp  Acme Corp`);
  t.notMatch(listed.stdout, 'sbk_', 'the key is not shown again');
  const usage = await runCommand(['dist/cli/index.js', 'org', 'create'], { DATA_DIR: dataDir });
  t.equal(usage.code, 2);
  t.match(usage.stderr, 'org create needs --name');
  const server = await startServer({ DATA_DIR: dataDir });
  t.teardown(() => server.stop());
  const busy = await runCommand(['dist/cli/index.js', 'org', 'list'], { DATA_DIR: dataDir });
  t.equal(busy.code, 1);
  t.match(busy.stderr, 'is in use by process', 'the CLI refuses a DATA_DIR a running server holds');
  const res = await fetch(`${server.url}/api/v1/organization`, { headers: { authorization: `Bearer ${key}` } });
  t.equal(res.status, 200, 'the printed key works against the server');
});
