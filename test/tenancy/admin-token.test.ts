import { existsSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { bearer, build } from '../helper.js';
import { runCommand } from '../support/process.js';

const OLD = 'old-admin-token-0123456789abcdefghijklmnop';
const NEW = 'new-admin-token-0123456789abcdefghijklmnop';

t.test('ADMIN_TOKEN_FILE is re-read when it changes: rotation needs no restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-admin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'admin-token');
  await writeFile(file, `${OLD}\n`);
  const app = await build(t, { env: { ADMIN_TOKEN: '', ADMIN_TOKEN_FILE: file } });
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer(OLD) })).statusCode, 200);
  // Rotate the way secret managers do: write a new file, rename it over the old one.
  await writeFile(join(dir, 'next'), NEW);
  await rename(join(dir, 'next'), file);
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer(OLD) })).statusCode, 401, 'old token refused');
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer(NEW) })).statusCode, 200, 'new token accepted');
  // A rotation to an unusable file fails closed.
  await writeFile(file, 'short');
  const broken = await app.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer(NEW) });
  t.equal(broken.statusCode, 503);
  t.equal(broken.json().code, 'admin_not_configured');
});

t.test('ADMIN_TOKEN shorter than 32 characters, or set together with ADMIN_TOKEN_FILE, is a configuration error', async (t) => {
  t.throws(() => loadConfig({ ADMIN_TOKEN: 'short' }), { name: 'ConfigError', message: /ADMIN_TOKEN: must be at least 32 characters/ });
  t.throws(() => loadConfig({ ADMIN_TOKEN: OLD, ADMIN_TOKEN_FILE: '/x' }), { name: 'ConfigError', message: /ADMIN_TOKEN_FILE/ });
});

t.test('start-up fails clearly, before opening the database, when ADMIN_TOKEN_FILE is missing or too short', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-admin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'short'), 'too-short');
  for (const [file, message] of [
    [join(dir, 'missing'), 'cannot be read'],
    [join(dir, 'short'), 'at least 32 characters'],
  ] as const) {
    const dataDir = join(dir, 'data');
    const { code, stderr } = await runCommand(['dist/server.js'], { DATA_DIR: dataDir, PORT: '0', ADMIN_TOKEN_FILE: file });
    t.equal(code, 1);
    t.match(stderr, message);
    t.notMatch(stderr, /\n\s+at /);
    t.notOk(existsSync(join(dataDir, 'pg')), 'no database was created');
  }
});
