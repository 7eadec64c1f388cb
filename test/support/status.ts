// Shared by the status tests: a database of the test's own (so platform-wide counts are exact),
// and small steps that move the signals through the real API.
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { openDatabase, type Database } from '../../src/db/client.js';
import { applyMigrations } from '../../src/db/migrate.js';
import { asAgent, isolatedDatabaseEnv, TEST_DATABASE_URL } from '../helper.js';
import { migratedEmbedded } from './pglite-template.js';
import { githubHeaders } from './signing.js';

/** A fresh database nobody else writes to: a new Postgres database, or a new in-memory PGlite. */
export async function freshDatabase(t: Test, options: { migrate?: boolean } = {}): Promise<Database> {
  const env = TEST_DATABASE_URL ? await isolatedDatabaseEnv(t) : {};
  const migrate = options.migrate !== false;
  const database =
    !TEST_DATABASE_URL && migrate
      ? await migratedEmbedded()
      : await openDatabase({ databaseUrl: env.DATABASE_URL || undefined, poolMax: 5, connectTimeoutMs: 5000, dataDir: 'memory://' });
  t.teardown(() => database.close());
  if (migrate) await applyMigrations(database);
  return database;
}

/** Sends one signed delivery to the webhook; answers its delivery id. */
export async function deliver(app: FastifyInstance, hook: { url: string; secret: string }, remoteAddress = '127.0.0.1'): Promise<string> {
  const body = JSON.stringify({ n: Math.random() });
  const res = await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(hook.secret, body), payload: body, remoteAddress });
  if (res.statusCode !== 202) throw new Error(`deliver: ${res.statusCode} ${res.body}`);
  return res.json().delivery_id as string;
}

/** Leases up to `limit` deliveries for the agent; answers their ids. */
export async function lease(app: FastifyInstance, token: string, limit = 1): Promise<string[]> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(token), payload: { limit } });
  if (res.statusCode !== 200) throw new Error(`lease: ${res.statusCode} ${res.body}`);
  return (res.json().data as { id: string }[]).map((delivery) => delivery.id);
}

export async function nack(app: FastifyInstance, token: string, id: string) {
  const res = await app.inject({ method: 'POST', url: `/api/v1/agent/deliveries/${id}/nack`, headers: asAgent(token), payload: { retry_after_seconds: 0 } });
  if (res.statusCode !== 200) throw new Error(`nack: ${res.statusCode} ${res.body}`);
  return res.json();
}

export const codes = (body: { health: { warnings: { code: string }[] } }) => body.health.warnings.map((warning) => warning.code).sort();
