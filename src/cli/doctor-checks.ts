// The checks behind `npm run cli -- doctor`: a deployment judged from its environment and its
// database, without the server running. Each finding has a stable code, a severity and a one-line
// fix. Nothing here writes: no migration, no generated key, no canary. It runs only in the CLI
// process and is tested through the real CLI (test/cli/doctor.test.ts).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isIP } from 'node:net';
import { Redis } from 'ioredis';
import { ADMIN_TOKEN_MIN_LENGTH } from '../admin-token.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { checkCanaries } from '../db/canaries.js';
import { openDatabase, pingDatabase, type Database } from '../db/client.js';
import { withTimeout } from '../db/health.js';
import { ciphertextsByKey } from '../db/key-rotation.js';
import { migrationStatus } from '../db/migrate.js';
import { developmentKeyPath, readKeyring } from '../keyring-loader.js';
import { isLoopback } from '../net.js';

export type Severity = 'ok' | 'warning' | 'failure';

export interface Finding {
  code: string;
  severity: Severity;
  message: string;
  /** One line saying what to do; null for ok findings. */
  fix: string | null;
}

type Env = Record<string, string | undefined>;

const ok = (code: string, message: string): Finding => ({ code, severity: 'ok', message, fix: null });
const warning = (code: string, message: string, fix: string): Finding => ({ code, severity: 'warning', message, fix });
const failure = (code: string, message: string, fix: string): Finding => ({ code, severity: 'failure', message, fix });

/** 0 when everything is ok, 1 with warnings, 2 with any failure. */
export function exitCode(findings: Finding[]): 0 | 1 | 2 {
  if (findings.some((finding) => finding.severity === 'failure')) return 2;
  return findings.some((finding) => finding.severity === 'warning') ? 1 : 0;
}

const present = (value: string | undefined): string | undefined => (value === undefined || value.trim() === '' ? undefined : value.trim());
const entries = (value: string | undefined) => (value ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);

// Variables whose problems get a finding of their own instead of a generic config_invalid.
const LINTED = new Set(['TRUST_PROXY', 'CORS_ORIGINS', 'ADMIN_TOKEN', 'ADMIN_TOKEN_FILE']);

function isWildcardProxy(entry: string): boolean {
  if (entry === 'true' || entry.includes('*')) return true;
  const [address, prefix] = entry.split('/');
  return prefix !== undefined && Number(prefix) === 0 && address !== undefined && isIP(address) !== 0;
}

/** Bits of entropy if each character were drawn independently from the token's own distribution. */
function estimatedBits(token: string): number {
  const counts = new Map<string, number>();
  for (const char of token) counts.set(char, (counts.get(char) ?? 0) + 1);
  let perChar = 0;
  for (const count of counts.values()) {
    const p = count / token.length;
    perChar -= p * Math.log2(p);
  }
  return perChar * token.length;
}

function adminTokenFinding(token: string, source: string): Finding {
  const fix = 'generate one with: openssl rand -base64 32';
  if (token.length < ADMIN_TOKEN_MIN_LENGTH) {
    return failure('admin_token_weak', `${source} has ${token.length} characters; at least ${ADMIN_TOKEN_MIN_LENGTH} are required`, fix);
  }
  if (new Set(token).size < 12 || estimatedBits(token) < 128) {
    return warning('admin_token_weak', `${source} is long enough but repetitive (about ${Math.floor(estimatedBits(token))} bits)`, fix);
  }
  return ok('admin_token_strong', `${source} is set and looks random`);
}

/** The platform admin token from ADMIN_TOKEN or ADMIN_TOKEN_FILE, as the server would read it. */
async function adminTokenFromEnv(env: Env): Promise<string | null> {
  const token = present(env.ADMIN_TOKEN);
  if (token) return token;
  const file = present(env.ADMIN_TOKEN_FILE);
  if (!file) return null;
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function lintEnvironment(env: Env): Promise<Finding[]> {
  const findings: Finding[] = [];
  const proxies = entries(env.TRUST_PROXY);
  const wild = proxies.filter(isWildcardProxy);
  if (wild.length > 0) {
    findings.push(
      failure(
        'trust_proxy_wildcard',
        `TRUST_PROXY=${wild.join(',')} trusts X-Forwarded-For from anyone: clients can forge their IP and dodge rate limits`,
        "set TRUST_PROXY to your proxies' addresses or CIDR ranges, e.g. 10.0.0.0/8",
      ),
    );
  } else {
    findings.push(ok('trust_proxy_safe', proxies.length > 0 ? `TRUST_PROXY trusts ${proxies.join(', ')}` : 'TRUST_PROXY is not set: client IPs are TCP peers'));
  }
  const wildOrigins = entries(env.CORS_ORIGINS).filter((origin) => origin.includes('*'));
  if (wildOrigins.length > 0) {
    findings.push(failure('cors_wildcard', `CORS_ORIGINS contains ${wildOrigins.join(', ')}`, 'list exact origins, e.g. CORS_ORIGINS=https://console.example.com'));
  } else {
    findings.push(ok('cors_origins_exact', 'CORS_ORIGINS has no wildcard'));
  }
  const file = present(env.ADMIN_TOKEN_FILE);
  const token = await adminTokenFromEnv(env);
  if (token !== null) {
    findings.push(adminTokenFinding(token, present(env.ADMIN_TOKEN) ? 'ADMIN_TOKEN' : 'ADMIN_TOKEN_FILE'));
  } else if (file) {
    findings.push(failure('admin_token_file_unreadable', `ADMIN_TOKEN_FILE ${file} cannot be read`, 'check the path and that the server user can read it'));
  } else {
    findings.push(ok('admin_token_not_set', 'ADMIN_TOKEN is not set: the platform admin API (and /api/v1/status) is off'));
  }
  return findings;
}

function oauthFindings(config: Config): Finding[] {
  if (!config.google) return [ok('google_oauth_not_configured', 'Google OAuth is not configured')];
  const redirect = new URL(config.google.redirectUri);
  const findings: Finding[] = [];
  if (redirect.protocol !== 'https:' && !isLoopback(redirect.hostname)) {
    findings.push(
      failure(
        'oauth_redirect_insecure',
        `GOOGLE_OAUTH_REDIRECT_URI ${config.google.redirectUri} is not https: authorization codes would cross the network in clear`,
        'use an https:// redirect URI (http is only for localhost)',
      ),
    );
  }
  const expected = `${config.baseUrl}/api/v1/oauth/google/callback`;
  if (config.google.redirectUri !== expected) {
    findings.push(
      warning('oauth_redirect_mismatch', `GOOGLE_OAUTH_REDIRECT_URI is ${config.google.redirectUri}, but BASE_URL implies ${expected}`, `set GOOGLE_OAUTH_REDIRECT_URI=${expected} (here and in the Google console), or fix BASE_URL`),
    );
  }
  if (findings.length === 0) findings.push(ok('oauth_redirect_ok', `GOOGLE_OAUTH_REDIRECT_URI is ${expected}`));
  return findings;
}

async function encryptionKeyFindings(env: Env, config: Config | null): Promise<Finding[]> {
  const production = present(env.NODE_ENV) === 'production';
  const key = present(env.TOKEN_ENCRYPTION_KEY);
  const fix = 'generate a key with `npm run cli -- keys generate`, set TOKEN_ENCRYPTION_KEY, and keep the development key in TOKEN_ENCRYPTION_OLD_KEYS until `keys rotate` ran';
  if (production && !key) {
    return [failure('dev_key_in_production', 'NODE_ENV=production without TOKEN_ENCRYPTION_KEY: the server refuses the generated development key', fix)];
  }
  if (!config) return [];
  const devPath = developmentKeyPath(config);
  const devKey = config.dataDir.startsWith('memory://') ? null : await readFile(devPath, 'utf8').then((text) => text.trim(), () => null);
  if (production && devKey !== null && key === devKey) {
    return [failure('dev_key_in_production', `TOKEN_ENCRYPTION_KEY is the development key generated into ${devPath}`, fix)];
  }
  if (!key) {
    const where = devKey === null && config.dataDir.startsWith('memory://') ? 'a throw-away key is used for the in-memory database' : `the development key in ${devPath} is used`;
    return [ok('encryption_key_development', `TOKEN_ENCRYPTION_KEY is not set: ${where} (NODE_ENV=${config.nodeEnv})`)];
  }
  return [ok('encryption_key_configured', 'TOKEN_ENCRYPTION_KEY is set')];
}

/** Configuration findings, and the configuration the remaining checks can use (null when unusable). */
async function checkEnvironment(env: Env): Promise<{ findings: Finding[]; config: Config | null }> {
  const findings = await lintEnvironment(env);
  let config: Config | null = null;
  const production = present(env.NODE_ENV) === 'production';
  try {
    config = loadConfig(env);
    findings.push(ok('config_valid', 'the configuration is valid'));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // The production-key rule has its own finding (dev_key_in_production).
    const others = err.problems.filter((problem) => !LINTED.has(problem.variable) && !(production && problem.variable === 'TOKEN_ENCRYPTION_KEY' && !present(env.TOKEN_ENCRYPTION_KEY)));
    for (const problem of others) {
      findings.push(failure('config_invalid', `${problem.variable}: ${problem.message}`, `fix ${problem.variable} (docs/reference/configuration.md)`));
    }
    if (others.length === 0) {
      // Only linted variables are wrong: check the rest of the deployment without them.
      const keyless = production && !present(env.TOKEN_ENCRYPTION_KEY);
      const rest = Object.fromEntries(Object.entries(env).filter(([name]) => !LINTED.has(name) && !(keyless && name === 'NODE_ENV')));
      try {
        config = loadConfig(rest);
      } catch {
        config = null;
      }
    }
  }
  findings.push(...(await encryptionKeyFindings(env, config)));
  if (config) findings.push(...oauthFindings(config));
  return { findings, config };
}

/** Never echo a connection string (it may hold a password). */
function describe(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\b(postgres(ql)?|rediss?):\/\/\S+/g, '$1://…').slice(0, 200);
}

async function keyringFindings(database: Database, config: Config): Promise<Finding[]> {
  const loaded = await readKeyring(config);
  if (!loaded) return [ok('keyring_not_created', 'no encryption key yet: the server generates a development key at first start')];
  const { keyring } = loaded;
  const findings: Finding[] = [];
  const canaries = await checkCanaries(database.db, keyring);
  if (!canaries.ok) {
    const parts = [
      canaries.unknown_key_ids.length > 0 ? `data here was encrypted with key ${canaries.unknown_key_ids.join(', ')}, which is not configured` : '',
      canaries.failing_key_ids.length > 0 ? `configured key ${canaries.failing_key_ids.join(', ')} does not decrypt its canary` : '',
    ].filter(Boolean);
    findings.push(
      failure(
        'keyring_canary_failed',
        `the encryption keys cannot decrypt this database: ${parts.join('; ')} (current key ${keyring.currentKeyId})`,
        'set TOKEN_ENCRYPTION_KEY to the key this database was written with, or add it to TOKEN_ENCRYPTION_OLD_KEYS',
      ),
    );
  } else {
    findings.push(ok('keyring_ok', `the configured keys decrypt this database's canaries (current key ${keyring.currentKeyId})`));
  }
  const byKey = await ciphertextsByKey(database.db);
  const old = Object.entries(byKey).filter(([id]) => id !== keyring.currentKeyId);
  if (old.length > 0) {
    findings.push(
      warning(
        'old_keys_in_use',
        `stored secrets still under old keys: ${old.map(([id, n]) => `${id} (${n})`).join(', ')}`,
        'run `npm run cli -- keys rotate` (keep the old keys in TOKEN_ENCRYPTION_OLD_KEYS until it reports completion)',
      ),
    );
  }
  const unused = keyring.keyIds.filter((id) => id !== keyring.currentKeyId && !(id in byKey));
  if (unused.length > 0 && canaries.ok) {
    findings.push(ok('old_keys_unused', `TOKEN_ENCRYPTION_OLD_KEYS ${unused.join(', ')} protect no stored secret and can be removed`));
  }
  return findings;
}

export interface DatabaseCheckOptions {
  /** A running instance is probed too (--url): an embedded database it holds is no problem. */
  remote: boolean;
}

/** Reachability, migrations and the keyring, read-only. */
async function checkDatabase(config: Config, options: DatabaseCheckOptions): Promise<Finding[]> {
  const embedded = config.databaseUrl === undefined;
  if (embedded && !config.dataDir.startsWith('memory://') && !existsSync(resolve(config.dataDir, 'pg'))) {
    return [warning('database_missing', `no embedded database in ${resolve(config.dataDir)} yet`, 'start the server once (or `npm run migrate`) to create it, or set DATABASE_URL')];
  }
  let database: Database;
  try {
    database = await openDatabase({ databaseUrl: config.databaseUrl, poolMax: 1, connectTimeoutMs: config.databaseConnectTimeoutMs, dataDir: config.dataDir });
  } catch (err) {
    const message = describe(err);
    if (/is in use by process/.test(message)) {
      return options.remote
        ? [ok('database_in_use', `${message.split(';')[0]}; checked through --url instead`)]
        : [warning('database_in_use', message.split(';')[0]!, 'stop the server, or run doctor with --url against it')];
    }
    return [failure('database_unreachable', `the database cannot be opened: ${message}`, 'check DATABASE_URL (or DATA_DIR) and that the database is running')];
  }
  const findings: Finding[] = [];
  try {
    const timeout = config.databaseConnectTimeoutMs + config.readinessTimeoutMs;
    const started = Date.now();
    try {
      await withTimeout(pingDatabase(database.db), timeout);
    } catch (err) {
      return [failure('database_unreachable', `the ${database.kind} database does not answer: ${describe(err)}`, 'check that Postgres is up and DATABASE_URL (host, port, credentials) is right: psql "$DATABASE_URL" -c "select 1"')];
    }
    findings.push(ok('database_reachable', `the ${database.kind} database answered in ${Date.now() - started} ms`));
    const migrations = await withTimeout(migrationStatus(database.db), timeout);
    if (migrations.pending > 0) {
      const message = `${migrations.pending} of ${migrations.applied + migrations.pending} migrations are not applied`;
      findings.push(
        config.migrateOnStart
          ? warning('migrations_pending', `${message} (the server applies them at start: MIGRATE_ON_START=true)`, 'run `npm run migrate`, or start the server')
          : failure('migrations_pending', `${message} and MIGRATE_ON_START=false: servers stay not ready`, 'run `npm run migrate` with the same DATABASE_URL'),
      );
    } else {
      findings.push(ok('migrations_current', `all ${migrations.applied} migrations are applied`));
    }
    if (migrations.applied > 0) findings.push(...(await keyringFindings(database, config)));
  } catch (err) {
    findings.push(failure('database_check_failed', `the database check failed: ${describe(err)}`, 'check the database log; run doctor again'));
  } finally {
    await database.close();
  }
  return findings;
}

/** A PING to REDIS_URL when set. */
async function checkRedis(config: Config): Promise<Finding[]> {
  if (!config.redisUrl) return [ok('redis_not_configured', 'REDIS_URL is not set: rate limits are per instance (fine for one instance)')];
  const redis = new Redis(config.redisUrl, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await withTimeout(redis.connect(), 3000);
    await withTimeout(redis.ping(), 2000);
    return [ok('redis_reachable', 'Redis answers PING')];
  } catch (err) {
    return [failure('redis_unreachable', `Redis does not answer: ${describe(err)}`, 'check REDIS_URL and that Redis is running (redis-cli -u "$REDIS_URL" ping)')];
  } finally {
    redis.disconnect();
  }
}

async function fetchWithTimeout(url: string, init: RequestInit, ms: number): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
}

/** GET <url>/readyz and, with the admin token, <url>/api/v1/status of a running instance. */
async function probeInstance(baseUrl: string, adminToken: string | null, timeoutMs = 5000): Promise<Finding[]> {
  const url = baseUrl.replace(/\/+$/, '');
  const findings: Finding[] = [];
  try {
    const res = await fetchWithTimeout(`${url}/readyz`, {}, timeoutMs);
    const body = (await res.json().catch(() => null)) as { status?: string; checks?: Record<string, { status: string; error?: string }> } | null;
    if (res.status === 200 && body?.status === 'ready') {
      findings.push(ok('instance_ready', `${url}/readyz answers ready`));
    } else {
      const failing = Object.entries(body?.checks ?? {})
        .filter(([, check]) => check.status !== 'ok')
        .map(([name, check]) => `${name}: ${check.error ?? 'fail'}`);
      findings.push(failure('instance_not_ready', `${url}/readyz answers ${res.status}${failing.length > 0 ? ` (${failing.join(', ')})` : ''}`, 'see the /readyz table in docs/operations/README.md'));
    }
  } catch (err) {
    return [failure('instance_unreachable', `${url}/readyz does not answer: ${describe(err)}`, 'check the URL and that the server is running')];
  }
  if (adminToken === null) {
    findings.push(ok('instance_status_skipped', 'no ADMIN_TOKEN (or ADMIN_TOKEN_FILE): /api/v1/status not checked'));
    return findings;
  }
  try {
    const res = await fetchWithTimeout(`${url}/api/v1/status`, { headers: { authorization: `Bearer ${adminToken}` } }, timeoutMs);
    if (res.status === 401) {
      findings.push(failure('instance_status_unauthorized', `${url}/api/v1/status refused the admin token`, "use the instance's ADMIN_TOKEN (or ADMIN_TOKEN_FILE)"));
      return findings;
    }
    if (res.status !== 200) {
      findings.push(warning('instance_status_unavailable', `${url}/api/v1/status answers ${res.status}`, 'set ADMIN_TOKEN (or ADMIN_TOKEN_FILE) on the instance'));
      return findings;
    }
    const body = (await res.json()) as { version: string; health: { ok: boolean; warnings: { code: string; message: string }[] } };
    if (body.health.ok) findings.push(ok('instance_status_ok', `${url}/api/v1/status reports no warning (version ${body.version})`));
    for (const item of body.health.warnings) {
      findings.push(warning(item.code, `the instance reports: ${item.message}`, 'see the SLO table in docs/operations/README.md'));
    }
  } catch (err) {
    findings.push(failure('instance_unreachable', `${url}/api/v1/status does not answer: ${describe(err)}`, 'check the URL and that the server is running'));
  }
  return findings;
}

export interface DoctorOptions {
  url?: string | undefined;
}

/** Every check, in reading order. */
export async function runDoctor(env: Env, options: DoctorOptions = {}): Promise<Finding[]> {
  const { findings, config } = await checkEnvironment(env);
  if (config) {
    findings.push(...(await checkDatabase(config, { remote: options.url !== undefined })));
    findings.push(...(await checkRedis(config)));
  } else {
    findings.push(failure('checks_skipped', 'the database and Redis were not checked because the configuration is invalid', 'fix the configuration findings above, then run doctor again'));
  }
  if (options.url) findings.push(...(await probeInstance(options.url, await adminTokenFromEnv(env))));
  return findings;
}
