// `npm run cli -- doctor`: the real CLI (dist/cli/index.js) against a real database, with the
// environment variations that trigger each finding, and --url against a started server.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { generateKey, keyId, parseKey } from '../../src/crypto/keyring.js';
import { openDatabase } from '../../src/db/client.js';
import { ADMIN_TOKEN, isolatedDatabaseEnv, TEST_DATABASE_URL, TEST_REDIS_URL } from '../helper.js';
import { runCommand, startServer } from '../support/process.js';

// Each doctor run is a process of its own that, embedded, opens PGlite from disk: slow, not stuck.
t.setTimeout(300_000);

interface Finding {
  code: string;
  severity: 'ok' | 'warning' | 'failure';
  message: string;
  fix: string | null;
}

type Env = Record<string, string | undefined>;

async function doctor(env: Env, ...args: string[]) {
  const { code, stdout, stderr } = await runCommand(['dist/cli/index.js', 'doctor', '--json', ...args], env);
  let report: { exit_code: number; findings: Finding[] };
  try {
    report = JSON.parse(stdout);
  } catch {
    throw new Error(`doctor printed no JSON (exit ${code}):\n${stdout}\n${stderr}`);
  }
  const find = (wanted: string) => report.findings.find((finding) => finding.code === wanted);
  return { code, stdout, stderr, report, find, codes: report.findings.filter((f) => f.severity !== 'ok').map((f) => `${f.severity}:${f.code}`).sort() };
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-doctor-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const KEY_A = generateKey();
const KEY_B = generateKey();
const base = { ADMIN_TOKEN, LOG_LEVEL: 'silent' };

t.test('unsafe settings each get a finding with a fix, and the run exits 2', async (t) => {
  const dataDir = await tempDir(t); // no database yet: only the configuration is judged
  const run = await doctor({
    DATA_DIR: dataDir,
    TOKEN_ENCRYPTION_KEY: KEY_A,
    ADMIN_TOKEN: 'too-short',
    TRUST_PROXY: 'true',
    CORS_ORIGINS: '*',
    GOOGLE_OAUTH_CLIENT_ID: 'client',
    GOOGLE_OAUTH_CLIENT_SECRET: 'secret',
    GOOGLE_OAUTH_REDIRECT_URI: 'http://switchboard.example.com/api/v1/oauth/google/callback',
  });
  t.equal(run.code, 2);
  t.equal(run.report.exit_code, 2);
  t.same(run.codes, [
    'failure:admin_token_weak',
    'failure:cors_wildcard',
    'failure:oauth_redirect_insecure',
    'failure:trust_proxy_wildcard',
    'warning:database_missing',
    'warning:oauth_redirect_mismatch',
  ]);
  for (const finding of run.report.findings.filter((f) => f.severity !== 'ok')) t.match(finding.fix, /\S/, `${finding.code} has a fix`);
  t.notMatch(run.stdout, 'too-short', 'the token itself is never printed');
});

t.test('a development key with NODE_ENV=production is a failure; a long but repetitive admin token a warning', async (t) => {
  const dataDir = await tempDir(t);
  const devKey = generateKey();
  await writeFile(join(dataDir, 'encryption.key'), `${devKey}\n`);
  const copied = await doctor({ DATA_DIR: dataDir, NODE_ENV: 'production', TOKEN_ENCRYPTION_KEY: devKey, ADMIN_TOKEN: 'ab'.repeat(20) });
  t.equal(copied.code, 2);
  t.same(copied.codes, ['failure:dev_key_in_production', 'warning:admin_token_weak', 'warning:database_missing']);
  t.match(copied.find('dev_key_in_production')!.message, 'encryption.key');

  const unset = await doctor({ DATA_DIR: dataDir, NODE_ENV: 'production', ...base });
  t.equal(unset.code, 2);
  t.same(unset.codes, ['failure:dev_key_in_production', 'warning:database_missing']);
});

t.test('an unreachable database and Redis exit 2 without printing the connection strings', async (t) => {
  const { code, stdout } = await runCommand(['dist/cli/index.js', 'doctor', '--url', 'http://127.0.0.1:1'], {
    ...base,
    TOKEN_ENCRYPTION_KEY: KEY_A,
    DATABASE_URL: 'postgres://doctor:sekret-pw@127.0.0.1:1/switchboard',
    DATABASE_CONNECT_TIMEOUT_MS: '1000',
    REDIS_URL: 'redis://:redis-pw@127.0.0.1:1',
  });
  t.equal(code, 2);
  t.match(stdout, /FAILURE {2}database_unreachable: /);
  t.match(stdout, /FAILURE {2}redis_unreachable: /);
  t.match(stdout, /FAILURE {2}instance_unreachable: /);
  t.match(stdout, /\n {9}fix: /);
  t.match(stdout, /3 failure\(s\)/);
  t.notMatch(stdout, /sekret-pw|redis-pw/);
});

t.test('unknown options are a usage error', async (t) => {
  const { code, stderr } = await runCommand(['dist/cli/index.js', 'doctor', '--bogus'], base);
  t.equal(code, 2);
  t.match(stderr, 'doctor [--json] [--url URL]');
});

t.test('pending migrations: a warning when the server applies them at start, a failure otherwise', async (t) => {
  const dbEnv = await isolatedDatabaseEnv(t);
  if (!TEST_DATABASE_URL) {
    // An embedded database that exists but was never migrated.
    const database = await openDatabase({ databaseUrl: undefined, poolMax: 1, connectTimeoutMs: 1000, dataDir: dbEnv.DATA_DIR! });
    await database.close();
  }
  const env = { ...base, ...dbEnv, TOKEN_ENCRYPTION_KEY: KEY_A };
  const warned = await doctor(env);
  t.equal(warned.code, 1);
  t.same(warned.codes, ['warning:migrations_pending']);
  const failed = await doctor({ ...env, MIGRATE_ON_START: 'false' });
  t.equal(failed.code, 2);
  t.same(failed.codes, ['failure:migrations_pending']);
});

t.test('a deployment end to end: healthy, probed with --url, then a wrong key and an unfinished rotation', async (t) => {
  const dbEnv = await isolatedDatabaseEnv(t, { migrated: true });
  const redis = TEST_REDIS_URL ? { REDIS_URL: TEST_REDIS_URL } : {};
  const google = {
    BASE_URL: 'http://127.0.0.1:8080',
    GOOGLE_OAUTH_CLIENT_ID: 'client',
    GOOGLE_OAUTH_CLIENT_SECRET: 'secret',
    GOOGLE_OAUTH_REDIRECT_URI: 'http://127.0.0.1:8080/api/v1/oauth/google/callback',
  };
  const env = { ...base, ...dbEnv, ...redis, ...google, TOKEN_ENCRYPTION_KEY: KEY_A };

  const server = await startServer(env);
  t.teardown(() => server.stop());
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const created = (await (await fetch(`${server.url}/api/v1/organizations`, { method: 'POST', headers: admin, body: '{"name":"Doctor"}' })).json()) as any;
  const hook = await fetch(`${server.url}/api/v1/webhooks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${created.api_key.key}`, 'content-type': 'application/json' },
    body: '{"name":"hook"}',
  });
  t.equal(hook.status, 201);

  const probed = await doctor(env, '--url', server.url);
  t.equal(probed.code, 0, probed.stdout);
  t.same(probed.codes, []);
  t.equal(probed.find('instance_ready')?.severity, 'ok');
  t.match(probed.find('instance_status_ok')?.message, 'version');
  t.equal(probed.find('oauth_redirect_ok')?.severity, 'ok');
  t.ok(probed.find(TEST_DATABASE_URL ? 'keyring_ok' : 'database_in_use'), 'the database is checked directly, or through --url when the server holds it');
  if (TEST_REDIS_URL) t.equal(probed.find('redis_reachable')?.severity, 'ok');

  const stranger = await doctor({ ...env, ADMIN_TOKEN: generateKey() }, '--url', server.url);
  t.equal(stranger.code, 2);
  t.same(stranger.codes, ['failure:instance_status_unauthorized']);
  t.equal(await server.stop(), 0);

  const healthy = await doctor(env);
  t.equal(healthy.code, 0, healthy.stdout);
  for (const code of ['config_valid', 'database_reachable', 'migrations_current', 'keyring_ok', 'admin_token_strong']) t.ok(healthy.find(code), code);

  const wrongKey = await doctor({ ...env, TOKEN_ENCRYPTION_KEY: KEY_B });
  t.equal(wrongKey.code, 2);
  t.same(wrongKey.codes, ['failure:keyring_canary_failed', 'warning:old_keys_in_use']);
  t.match(wrongKey.find('keyring_canary_failed')!.message, `key ${keyId(parseKey(KEY_A))}, which is not configured`);
  t.match(wrongKey.find('keyring_canary_failed')!.fix, 'TOKEN_ENCRYPTION_KEY');

  const rotating = await doctor({ ...env, TOKEN_ENCRYPTION_KEY: KEY_B, TOKEN_ENCRYPTION_OLD_KEYS: KEY_A });
  t.equal(rotating.code, 1);
  t.same(rotating.codes, ['warning:old_keys_in_use']);
  t.match(rotating.find('old_keys_in_use')!.fix, 'keys rotate');
});
