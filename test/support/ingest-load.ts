// Talking to a running server over real HTTP: set up an organization, agent and webhook through
// the API, and a sender that keeps posting signed deliveries and records what each one got, so a
// test can check afterwards that every acknowledged (202) delivery is in the database.
import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { openDatabase, rowsOf } from '../../src/db/client.js';
import { ADMIN_TOKEN, randomName } from '../helper.js';
import { githubHeaders } from './signing.js';

export async function api(base: string, method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: (text ? JSON.parse(text) : undefined) as any };
}

export interface HttpFixture {
  orgId: string;
  adminKey: string;
  agent: { id: string; token: string };
  hook: { id: string; secret: string; path: string };
}

/** An organization with an agent and a GitHub-signed webhook routed to it, created over HTTP. */
export async function createFixture(base: string): Promise<HttpFixture> {
  const org = await api(base, 'POST', '/api/v1/organizations', ADMIN_TOKEN, { name: randomName() });
  if (org.status !== 201) throw new Error(`create org: ${org.status} ${JSON.stringify(org.json)}`);
  const adminKey = org.json.api_key.key as string;
  const agent = await api(base, 'POST', '/api/v1/agents', adminKey, { name: randomName('agent') });
  if (agent.status !== 201) throw new Error(`create agent: ${agent.status}`);
  const hook = await api(base, 'POST', '/api/v1/webhooks', adminKey, { name: randomName('hook'), agent_id: agent.json.agent.id });
  if (hook.status !== 201) throw new Error(`create webhook: ${hook.status}`);
  return {
    orgId: org.json.organization.id,
    adminKey,
    agent: { id: agent.json.agent.id, token: agent.json.token },
    hook: { id: hook.json.webhook.id, secret: hook.json.secret, path: `/api/v1/hooks/${hook.json.webhook.id}` },
  };
}

export interface IngestOutcome {
  status: number | 'error';
  error?: string;
  deliveryId?: string;
  sha256: string;
  ms: number;
  retryAfter: string | null;
  contentType: string | null;
  startedAt: number;
}

export interface IngestLoad {
  outcomes: IngestOutcome[];
  /** Deliveries that got 202: id → body sha256. */
  acknowledged(): Map<string, string>;
  /** Resolves when at least `n` more requests have been answered (any outcome). */
  waitFor(n: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `concurrency` loops posting unique signed JSON bodies to `base + hook.path` until stopped. Each
 * request is abandoned (recorded as an error) after `timeoutMs`, so a hang shows up as a slow
 * outcome instead of stalling the test. X-Forwarded-For, when given, is sent on every request.
 */
export function startIngest(
  base: string,
  hook: { path: string; secret: string },
  options: { concurrency?: number; timeoutMs?: number; forwardedFor?: () => string } = {},
): IngestLoad {
  const outcomes: IngestOutcome[] = [];
  let running = true;
  let waiters: { target: number; resolve: () => void }[] = [];
  let seq = 0;
  const record = (outcome: IngestOutcome) => {
    outcomes.push(outcome);
    waiters = waiters.filter((waiter) => (outcomes.length >= waiter.target ? (waiter.resolve(), false) : true));
  };
  const loop = async () => {
    while (running) {
      const body = JSON.stringify({ seq: seq++, nonce: randomBytes(8).toString('hex'), at: Date.now() });
      const sha256 = createHash('sha256').update(body).digest('hex');
      const headers: Record<string, string> = await githubHeaders(hook.secret, body);
      if (options.forwardedFor) headers['x-forwarded-for'] = options.forwardedFor();
      const startedAt = Date.now();
      try {
        const res = await fetch(`${base}${hook.path}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
        const json = (await res.json().catch(() => ({}))) as { delivery_id?: string };
        record({
          status: res.status,
          deliveryId: json.delivery_id,
          sha256,
          ms: Date.now() - startedAt,
          retryAfter: res.headers.get('retry-after'),
          contentType: res.headers.get('content-type'),
          startedAt,
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause;
        record({ status: 'error', error: cause?.code ?? (err as Error).name, sha256, ms: Date.now() - startedAt, retryAfter: null, contentType: null, startedAt });
        // The server is gone (killed or stopping): do not spin.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  const loops = Array.from({ length: options.concurrency ?? 4 }, loop);
  return {
    outcomes,
    acknowledged() {
      const map = new Map<string, string>();
      for (const outcome of outcomes) if (outcome.status === 202 && outcome.deliveryId) map.set(outcome.deliveryId, outcome.sha256);
      return map;
    },
    waitFor(n) {
      const target = outcomes.length + n;
      return new Promise((resolve) => {
        if (outcomes.length >= target) resolve();
        else waiters.push({ target, resolve });
      });
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/**
 * The stored deliveries of a webhook as id → sha256 of the stored body bytes (computed by the
 * database), read through a connection of our own: a Postgres URL, or an embedded DATA_DIR that
 * no server holds any more.
 */
export async function storedBodies(where: { databaseUrl?: string | undefined; dataDir?: string }, webhookId: string): Promise<Map<string, string>> {
  const database = await openDatabase({ databaseUrl: where.databaseUrl, dataDir: where.dataDir ?? 'memory://', poolMax: 1, connectTimeoutMs: 5000 });
  try {
    const rows = rowsOf<{ id: string; sha: string }>(
      await database.db.execute(sql`select id::text as id, encode(sha256(body), 'hex') as sha from webhook_deliveries where webhook_id = ${webhookId}`),
    );
    return new Map(rows.map((row) => [row.id, row.sha]));
  } finally {
    await database.close();
  }
}

/**
 * Stored deliveries the sender cannot account for: a body it never sent, one stored twice, or one
 * answered 202 under another id. Every body the load sends is unique, so each stored row belongs to
 * exactly one request: a 202 (its own id), or a 503 or dropped connection (stored, not acknowledged).
 */
export function unaccountedDeliveries(outcomes: IngestOutcome[], stored: Map<string, string>): string[] {
  const sent = new Map(outcomes.map((outcome) => [outcome.sha256, outcome]));
  const seen = new Set<string>();
  const unaccounted: string[] = [];
  for (const [id, sha] of stored) {
    const outcome = sent.get(sha);
    if (!outcome || seen.has(sha) || (outcome.status === 202 && outcome.deliveryId !== id)) unaccounted.push(id);
    seen.add(sha);
  }
  return unaccounted;
}

/** Acknowledged deliveries that are missing from, or differ in, the database. */
export function lostDeliveries(acknowledged: Map<string, string>, stored: Map<string, string>): string[] {
  const lost: string[] = [];
  for (const [id, sha] of acknowledged) if (stored.get(id) !== sha) lost.push(id);
  return lost;
}
