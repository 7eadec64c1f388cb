// The built server as a process: start-up errors, signals, and the embedded database on disk.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCommand, startServer } from '../support/process.js';

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
  const env = { DATA_DIR: dataDir, LOG_LEVEL: 'info' };

  const first = await startServer(env);
  const ready = (await (await fetch(`${first.url}/readyz`)).json()) as any;
  t.equal(ready.status, 'ready');
  t.match(first.output(), 'DATABASE_URL is not set: using the embedded Postgres');
  t.equal(await first.stop('SIGTERM'), 0, 'exit code 0 after SIGTERM');
  t.match(first.output(), 'shutdown complete');

  const second = await startServer(env);
  const again = (await (await fetch(`${second.url}/readyz`)).json()) as any;
  t.equal(again.checks.migrations.applied, ready.checks.migrations.applied, 'migrations were not re-applied');
  t.equal(await second.stop('SIGINT'), 0, 'exit code 0 after SIGINT');
});

t.test('a second server on the same DATA_DIR is refused with a clear message', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'switchboard-data-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const first = await startServer({ DATA_DIR: dataDir });
  t.teardown(() => first.stop());
  const second = await runCommand(['dist/server.js'], { DATA_DIR: dataDir, PORT: '0' });
  t.equal(second.code, 1);
  t.match(second.stderr, `is in use by process ${first.child.pid}`);
});
