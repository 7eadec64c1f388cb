// Test helpers: build the real app on a real database (embedded PGlite, or the Postgres server in
// TEST_DATABASE_URL), capture its logs, and start the built server as a child process.
import { Writable } from 'node:stream';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { buildApp, type BuildOptions } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { openDatabase, type Database } from '../src/db/client.js';
import { applyMigrations } from '../src/db/migrate.js';
import { webhooks } from '../src/db/schema.js';
import { copyTemplateInto, migratedEmbedded } from './support/pglite-template.js';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
export const backend = TEST_DATABASE_URL ? 'postgres' : 'embedded';

type Env = Record<string, string | undefined>;

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdefghijklmnop';
export const TOKEN_ENCRYPTION_KEY = 'hF4aVq1mN0sX7pL2kJ9wR3tY6uI8oE5bC1dG4fH7jK0=';

export function testConfig(env: Env = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    ADMIN_TOKEN,
    TOKEN_ENCRYPTION_KEY,
    LOG_LEVEL: 'silent',
    DATABASE_URL: TEST_DATABASE_URL,
    DATA_DIR: 'memory://',
    DATABASE_CONNECT_TIMEOUT_MS: '2000',
    ...env,
  });
}

let shared: Promise<Database> | undefined;

/**
 * One migrated database per test process, shared by every app the file builds (PGlite takes
 * seconds to start). Closed when the file's tests are done.
 */
export function sharedDatabase(): Promise<Database> {
  if (!shared) {
    shared = (async () => {
      const database = TEST_DATABASE_URL
        ? await openDatabase({ databaseUrl: TEST_DATABASE_URL, poolMax: 10, connectTimeoutMs: 5000, dataDir: 'memory://' })
        : await migratedEmbedded();
      await applyMigrations(database);
      t.teardown(() => database.close());
      return database;
    })();
  }
  return shared;
}

export interface BuildTestOptions extends Omit<BuildOptions, 'database'> {
  env?: Env;
  /** Give the app a database of its own instead of the shared one. */
  database?: Database | 'own';
}

/** The real app on the shared test database; closed when the test ends. */
export async function build(test: Test, options: BuildTestOptions = {}): Promise<FastifyInstance> {
  const config = testConfig(options.env);
  let database = options.database === 'own' ? undefined : options.database ?? (await sharedDatabase());
  if (options.database === 'own' && config.databaseUrl === undefined && config.dataDir.startsWith('memory://')) {
    // An embedded database of its own, started from the migrated template (seconds faster).
    const own = await migratedEmbedded();
    test.teardown(() => own.close());
    database = own;
  }
  const app = await buildApp(config, { ...options, database });
  test.after(() => app.close());
  return app;
}

export interface CapturedLogs {
  destination: Writable;
  text(): string;
  lines(): Record<string, unknown>[];
}

/** A pino destination that keeps every line, for assertions about what gets logged. */
export function captureLogs(): CapturedLogs {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return {
    destination,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const asAdmin = bearer(ADMIN_TOKEN);

export const randomName = (prefix = 'org') => `${prefix}-${Math.random().toString(36).slice(2, 10)}`;

export interface TestOrg {
  id: string;
  name: string;
  slug: string;
  adminKey: string;
  adminKeyId: string;
}

/** A new organization with random names, created through the platform admin API. */
export async function createOrg(app: FastifyInstance, name = randomName()): Promise<TestOrg> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name } });
  if (res.statusCode !== 201) throw new Error(`createOrg: ${res.statusCode} ${res.body}`);
  const body = res.json();
  return { id: body.organization.id, name, slug: body.organization.slug, adminKey: body.api_key.key, adminKeyId: body.api_key.id };
}

/** A new API key of `role` in the organization of `adminKey`. */
export async function createKey(app: FastifyInstance, adminKey: string, role: 'admin' | 'read_only', extra: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: bearer(adminKey), payload: { name: randomName('key'), role, ...extra } });
  if (res.statusCode !== 201) throw new Error(`createKey: ${res.statusCode} ${res.body}`);
  const body = res.json();
  return { id: body.api_key.id as string, key: body.api_key.key as string };
}

/** A new agent in the organization of `adminKey`, with its token. */
export async function createAgent(app: FastifyInstance, adminKey: string, body: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/api/v1/agents', headers: bearer(adminKey), payload: { name: randomName('agent'), ...body } });
  if (res.statusCode !== 201) throw new Error(`createAgent: ${res.statusCode} ${res.body}`);
  const json = res.json();
  return { id: json.agent.id as string, token: json.token as string };
}

export const asAgent = (token: string) => ({ 'x-agent-token': token });

/** A random address in TEST-NET-2, so rate-limit buckets of parallel tests never meet. */
export const randomIp = () => `198.51.100.${1 + Math.floor(Math.random() * 254)}`;
export const randomIpv6 = () => `2001:db8::${Math.floor(Math.random() * 0xffff).toString(16)}:${Math.floor(Math.random() * 0xffff).toString(16)}`;

/** A Redis server for shared rate-limit tests (CI sets it); those tests are skipped without it. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;

/** A new webhook endpoint in the organization of `adminKey`, with its signing secret. */
export async function createWebhook(app: FastifyInstance, adminKey: string, body: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/api/v1/webhooks', headers: bearer(adminKey), payload: { name: randomName('hook'), ...body } });
  if (res.statusCode !== 201) throw new Error(`createWebhook: ${res.statusCode} ${res.body}`);
  const json = res.json();
  return { id: json.webhook.id as string, secret: json.secret as string, url: `/api/v1/hooks/${json.webhook.id}` };
}

/** createWebhook, plus the row as stored, for tests that store deliveries directly (`verifiedWith`: see NewDelivery). */
export async function createWebhookWithRow(app: FastifyInstance, adminKey: string, body: Record<string, unknown> = {}) {
  const hook = await createWebhook(app, adminKey, body);
  const [row] = await app.db.select().from(webhooks).where(eq(webhooks.id, hook.id));
  return { ...hook, organizationId: row!.organizationId, verifiedWith: row! };
}

export type WebhookWithRow = Awaited<ReturnType<typeof createWebhookWithRow>>;

/**
 * A database of the test's own, for tests that change what every row depends on (e.g. the
 * encryption key): a fresh database on the Postgres server, or an embedded one in a temporary
 * DATA_DIR (one app at a time may open it). `migrated`: the embedded one starts as a copy of
 * the migrated template (no initdb); a Postgres one starts empty either way and is migrated at
 * start, which is quick there.
 */
export async function isolatedDatabaseEnv(test: Test, options: { migrated?: boolean } = {}): Promise<Env> {
  if (!TEST_DATABASE_URL) {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'switchboard-test-'));
    test.teardown(() => rm(dir, { recursive: true, force: true }));
    if (options.migrated) await copyTemplateInto(dir);
    return { DATABASE_URL: '', DATA_DIR: dir };
  }
  const { default: postgres } = await import('postgres');
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  const name = `switchboard_t_${Math.random().toString(36).slice(2, 10)}`;
  await admin.unsafe(`create database ${name}`);
  test.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return { DATABASE_URL: url.toString() };
}
