// Webhook deliveries: stored once per sender delivery id, leased to agents exclusively, acked,
// retried, dead-lettered and pruned.
import { and, desc, eq, inArray, or, sql, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type postgres from 'postgres';
import { createBatcher, type Batcher, type BatchTuning, type Settled } from './batching.js';
import type { DbOrTx } from './client.js';
import { executePrepared, rowsOf } from './client.js';
import { COPY_MIN_BYTES, STAGED_BODIES, withStagedBodies } from './copy-bodies.js';
import { FOREIGN_KEY_VIOLATION, isDatabaseUnavailable, isPermissionDenied, sqlState } from './errors.js';
import { uuidv7 } from './ids.js';
import { afterCursor, toPage, type Page } from './pagination.js';
import { webhookDeliveries, webhooks } from './schema.js';
import type { Webhook } from './webhooks.js';

export type Delivery = typeof webhookDeliveries.$inferSelect;
export type DeliveryStatus = Delivery['status'];

/**
 * The webhook state a delivery was accepted under (its signature verified with these secrets). The
 * delivery is stored only if its webhook still has exactly this state, read in the INSERT itself;
 * otherwise it answers WebhookChanged and the caller verifies again against the current row.
 */
export type VerifiedWith = Pick<Webhook, 'signatureScheme' | 'secretCiphertext' | 'previousSecretCiphertext' | 'previousSecretExpiresAt'>;

export interface NewDelivery {
  organizationId: string;
  webhookId: string;
  verifiedWith: VerifiedWith;
  deliveryKey: string | null;
  contentType: string | null;
  body: Buffer;
  bodySha256: string;
  headers: Record<string, string>;
  sourceIp: string;
}

export interface StoredDelivery {
  id: string;
  duplicate: boolean;
}

/**
 * Nothing was stored: the webhook was disabled, deleted, moved to another scheme or given a new
 * secret (rotation, re-encryption) after the delivery was verified. Verify it again, then store.
 */
export class WebhookChanged extends Error {
  constructor(readonly webhookId: string) {
    super(`webhook ${webhookId} changed after the delivery was verified`);
    this.name = 'WebhookChanged';
  }
}

const keyOf = (input: NewDelivery) => (input.deliveryKey === null ? null : `${input.webhookId}\n${input.deliveryKey}`);

/**
 * Deliveries of one batch that repeat each other: the same delivery key, verified against the same
 * webhook state. One verified against another state (a copy from before a rotation) is judged on
 * its own: the INSERT may find that state no longer current (WebhookChanged), whatever the other.
 */
const repeatKeyOf = (input: NewDelivery) => {
  const key = keyOf(input);
  const state = input.verifiedWith;
  return key === null ? null : [key, state.signatureScheme, state.secretCiphertext, state.previousSecretCiphertext, state.previousSecretExpiresAt?.getTime()].join('\n');
};

/**
 * Stores several deliveries with one multi-row INSERT … ON CONFLICT DO NOTHING: one statement, so
 * one transaction and one commit for all of them. Each input gets its own answer: a repeated
 * delivery key (in the database or earlier in the same batch) answers duplicate with the original
 * id. If the batch fails as a whole, every delivery is retried on its own, so one bad row only
 * fails itself.
 */
export async function storeDeliveries(db: DbOrTx, inputs: NewDelivery[], options: StoreOptions = {}): Promise<Settled<StoredDelivery>[]> {
  const copy = options.copy ?? null;
  // Within the batch the first of each delivery key is stored; the others repeat it.
  const leaderOf = new Map<string, number>();
  const leaders: number[] = [];
  const follows = inputs.map((input, i) => {
    const key = repeatKeyOf(input);
    const first = key === null ? undefined : leaderOf.get(key);
    if (first !== undefined) return first;
    if (key !== null) leaderOf.set(key, i);
    leaders.push(i);
    return i;
  });
  const ids = leaders.map(() => uuidv7());
  let inserted: Set<string>;
  let changed: Set<number>;
  try {
    const outcome = await insertDeliveries(db, leaders.map((i, n) => ({ id: ids[n]!, input: inputs[i]! })), copy);
    inserted = new Set(outcome.inserted);
    changed = new Set(outcome.changed);
  } catch (error) {
    // Row by row only when a row's data was refused; an outage fails the batch as a whole (503 each).
    if (isDatabaseUnavailable(error)) return inputs.map(() => ({ ok: false, error }));
    if (inputs.length === 1) {
      // The webhook (or its organization) was deleted after the INSERT read it: its foreign-key
      // check waited for the delete and found the row gone. Like any change since verification,
      // the caller reads the webhook again (and answers 404).
      return [{ ok: false, error: sqlState(error) === FOREIGN_KEY_VIOLATION ? new WebhookChanged(inputs[0]!.webhookId) : error }];
    }
    return Promise.all(inputs.map(async (input) => (await storeDeliveries(db, [input], { copy }))[0]!));
  }
  const results = new Map<number, Settled<StoredDelivery>>();
  const conflicts: number[] = [];
  leaders.forEach((i, n) => {
    if (inserted.has(ids[n]!)) results.set(i, { ok: true, value: { id: ids[n]!, duplicate: false } });
    else if (changed.has(n + 1)) results.set(i, { ok: false, error: new WebhookChanged(inputs[i]!.webhookId) });
    else conflicts.push(i);
  });
  if (conflicts.length > 0) {
    // The inserted rows are committed whatever happens here: their answers stand.
    try {
      for (const [i, result] of await resolveConflicts(db, inputs, conflicts, { copy, retryVanished: options.retryVanished ?? true })) results.set(i, result);
    } catch (error) {
      for (const i of conflicts) results.set(i, { ok: false, error });
    }
  }
  return inputs.map((_input, i) => {
    const leader = results.get(follows[i]!)!;
    return i === follows[i] || !leader.ok ? leader : { ok: true, value: { id: leader.value.id, duplicate: true } };
  });
}

/** The original ids of deliveries whose key was already stored. */
async function resolveConflicts(
  db: DbOrTx,
  inputs: NewDelivery[],
  conflicts: number[],
  { copy, retryVanished }: { copy: CopyTarget | null; retryVanished: boolean },
): Promise<Map<number, Settled<StoredDelivery>>> {
  const results = new Map<number, Settled<StoredDelivery>>();
  const keys = JSON.stringify(
    conflicts.map((i) => ({ organization_id: inputs[i]!.organizationId, webhook_id: inputs[i]!.webhookId, delivery_key: inputs[i]!.deliveryKey })),
  );
  const existing = rowsOf<{ id: string; webhook_id: string; delivery_key: string }>(
    await db.execute(sql`
      select d.id, d.webhook_id, d.delivery_key
        from json_to_recordset((${keys}::text)::json) as k(organization_id uuid, webhook_id uuid, delivery_key text)
        join webhook_deliveries d on d.organization_id = k.organization_id and d.webhook_id = k.webhook_id and d.delivery_key = k.delivery_key`),
  );
  const byKey = new Map(existing.map((row) => [`${row.webhook_id}\n${row.delivery_key}`, row.id]));
  const vanished: number[] = [];
  for (const i of conflicts) {
    const id = byKey.get(keyOf(inputs[i]!)!);
    if (id) results.set(i, { ok: true, value: { id, duplicate: true } });
    else vanished.push(i);
  }
  // The conflicting row was deleted in between (retention): store these again, once.
  if (vanished.length > 0) {
    const again = retryVanished
      ? await storeDeliveries(db, vanished.map((i) => inputs[i]!), { copy, retryVanished: false })
      : vanished.map(() => ({ ok: false as const, error: new Error('the conflicting delivery vanished twice') }));
    vanished.forEach((i, n) => results.set(i, again[n]!));
  }
  return results;
}

export interface StoreOptions {
  copy?: CopyTarget | null;
  /** Store again, once, a delivery whose conflicting row vanished meanwhile (retention). */
  retryVanished?: boolean;
}

/** Where large batches of bodies may go by COPY (Postgres only; never while in a transaction of the caller's). */
export interface CopyTarget {
  sql: postgres.Sql;
  /** The longest wait for the COPY to complete (see withStagedBodies). */
  timeoutMs: number;
  /**
   * Called once if the database role may not create the temporary staging table (no TEMPORARY
   * privilege on the database); from then on every body goes as a parameter.
   */
  onRefused?(error: unknown): void;
}

/** Targets whose role may not create the staging table: they take the parameter path from then on. */
const refusedTargets = new WeakSet<CopyTarget>();
const dialect = new PgDialect();

/**
 * One INSERT for many rows: the columns travel as one JSON parameter that json_to_recordset
 * unpacks, so the statement's text is the same whatever the batch. `body` is the body column's
 * expression over the rows c, and `from` what it reads besides them.
 *
 * Only rows whose webhook is still enabled and holds the state they were verified with
 * (VerifiedWith) are inserted, read in the same statement: a delivery is never stored under a
 * secret or scheme its webhook no longer has, even when the caller verified it against a copy of
 * the row. Each inserted row answers its id; each row left out for that reason answers its n.
 */
const insertStatement = (rows: SQL, body: SQL, from: SQL) => sql`
    with r as (
      select * from json_to_recordset((${rows}::text)::json)
        as r(n integer, id uuid, organization_id uuid, webhook_id uuid, delivery_key text, content_type text, size integer, body_sha256 text,
             headers jsonb, source_ip text, body_offset integer, signature_scheme text, secret_ciphertext text, previous_secret_ciphertext text,
             previous_secret_expires_ms bigint)
    ), current as (
      select r.* from r
        join webhooks w on w.id = r.webhook_id and w.organization_id = r.organization_id and w.enabled
         and w.signature_scheme = r.signature_scheme and w.secret_ciphertext = r.secret_ciphertext
         and w.previous_secret_ciphertext is not distinct from r.previous_secret_ciphertext
         -- A Date holds milliseconds, the column microseconds: compared at the Date's precision.
         and floor(extract(epoch from w.previous_secret_expires_at) * 1000)::bigint is not distinct from r.previous_secret_expires_ms
    ), stored as (
      insert into webhook_deliveries (id, organization_id, webhook_id, delivery_key, content_type, body, size, body_sha256, headers, source_ip)
      select c.id, c.organization_id, c.webhook_id, c.delivery_key, c.content_type, ${body}, c.size, c.body_sha256, c.headers, c.source_ip
        from current c
        ${from}
       order by c.n
      on conflict (webhook_id, delivery_key) where delivery_key is not null do nothing
      returning id
    )
    select id, null::integer as changed from stored
    union all
    select null, r.n from r where not exists (select 1 from current c where c.n = r.n)`;

/**
 * The bodies go as one more parameter, all of them end to end, and each row says where its own
 * starts. Bodies inside the JSON parameter cost Postgres 15 a character-by-character copy (its
 * JSON lexer de-escapes every string value), a fifth of its CPU per delivery; a bytea parameter is
 * sent as hex, twice the size, and decoded by a table lookup per byte pair. Large batches on
 * Postgres go by COPY instead (insertDeliveries), so the doubling stays under COPY_MIN_BYTES there.
 * Built once; run as a prepared statement (executePrepared).
 */
const INSERT_WITH_BODIES = dialect.sqlToQuery(
  insertStatement(sql`${sql.placeholder('rows')}`, sql`substring(${sql.placeholder('bodies')}::bytea from c.body_offset + 1 for c.size)`, sql``),
);

interface InsertOutcome {
  /** Ids of the rows inserted. */
  inserted: string[];
  /** Positions (1-based) of the rows left out because their webhook changed. */
  changed: number[];
}

const outcomeOf = (rows: { id: string | null; changed: number | null }[]): InsertOutcome => ({
  inserted: rows.flatMap((row) => (row.id === null ? [] : [row.id])),
  changed: rows.flatMap((row) => (row.changed === null ? [] : [row.changed])),
});

/**
 * Inserts the rows and answers what became of them (InsertOutcome). The bodies travel as one
 * bytea parameter beside the JSON rows (INSERT_WITH_BODIES) or, when they add up to COPY_MIN_BYTES
 * and a CopyTarget is given, by COPY into a staging table in the same transaction as the INSERT.
 */
async function insertDeliveries(db: DbOrTx, rows: { id: string; input: NewDelivery }[], copy: CopyTarget | null): Promise<InsertOutcome> {
  const columns = (input: NewDelivery, id: string, n: number) => ({
    n,
    id,
    organization_id: input.organizationId,
    webhook_id: input.webhookId,
    delivery_key: input.deliveryKey,
    content_type: input.contentType,
    size: input.body.length,
    body_sha256: input.bodySha256,
    headers: input.headers,
    source_ip: input.sourceIp,
    signature_scheme: input.verifiedWith.signatureScheme,
    secret_ciphertext: input.verifiedWith.secretCiphertext,
    previous_secret_ciphertext: input.verifiedWith.previousSecretCiphertext,
    previous_secret_expires_ms: input.verifiedWith.previousSecretExpiresAt?.getTime() ?? null,
  });
  const bodyBytes = rows.reduce((total, { input }) => total + input.body.length, 0);
  if (copy && !refusedTargets.has(copy) && bodyBytes >= COPY_MIN_BYTES) {
    const json = JSON.stringify(rows.map(({ id, input }, i) => columns(input, id, i + 1)));
    const statement = dialect.sqlToQuery(insertStatement(sql`${json}`, sql`b.body`, sql.raw(`join ${STAGED_BODIES} b on b.n = c.n`)));
    try {
      const outcome = await withStagedBodies<{ id: string | null; changed: number | null }>(
        copy.sql,
        rows.map(({ input }) => input.body),
        statement,
        copy.timeoutMs,
      );
      return outcomeOf(outcome);
    } catch (error) {
      if (!isPermissionDenied(error)) throw error;
      refusedTargets.add(copy);
      copy.onRefused?.(error);
    }
  }
  let offset = 0;
  const json = JSON.stringify(
    rows.map(({ id, input }, i) => {
      const row = { ...columns(input, id, i + 1), body_offset: offset };
      offset += input.body.length;
      return row;
    }),
  );
  const bodies = Buffer.concat(rows.map(({ input }) => input.body), offset);
  return outcomeOf(await executePrepared<{ id: string | null; changed: number | null }>(db, 'store_deliveries', INSERT_WITH_BODIES, { rows: json, bodies }));
}

export interface DeliveryWriterOptions {
  /** Most deliveries in one INSERT. */
  maxBatch: number;
  /** A batch stops growing past this many body bytes (the driver copies bodies into one message). */
  maxBatchBytes: number;
  /** INSERTs running at once; deliveries arriving meanwhile wait and go out as the next batch. */
  maxInFlight: number;
  /** See BatchOptions.timeoutMs. */
  timeoutMs?: number | undefined;
  /** Large batches go by COPY through this client (Postgres only). */
  copy?: CopyTarget | null;
}

/**
 * Group commit for webhook ingest: deliveries received while earlier ones are being written are
 * stored together by storeDeliveries, so many requests share one commit. Each caller is answered
 * only once its own row is committed (or found to be a duplicate).
 */
export function deliveryWriter(db: DbOrTx, options: DeliveryWriterOptions): Batcher<NewDelivery, StoredDelivery> {
  return createBatcher<NewDelivery, StoredDelivery>({
    maxBatch: options.maxBatch,
    maxInFlight: options.maxInFlight,
    maxWeight: options.maxBatchBytes,
    weight: (input) => input.body.length,
    timeoutMs: options.timeoutMs,
    run: (inputs) => storeDeliveries(db, inputs, { copy: options.copy ?? null }),
  });
}

export async function listDeliveries(db: DbOrTx, organizationId: string, webhookId: string, filter: { status?: DeliveryStatus | undefined }, page: Page) {
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(
      and(
        eq(webhookDeliveries.organizationId, organizationId),
        eq(webhookDeliveries.webhookId, webhookId),
        afterCursor(webhookDeliveries.id, page),
        filter.status ? eq(webhookDeliveries.status, filter.status) : undefined,
      ),
    )
    .orderBy(desc(webhookDeliveries.id))
    .limit(page.limit + 1);
  return toPage(rows, page);
}

export async function getDelivery(db: DbOrTx, organizationId: string, webhookId: string, id: string): Promise<Delivery | null> {
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.organizationId, organizationId), eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.id, id)))
    .limit(1);
  return rows[0] ?? null;
}

/** Operator redelivery: back to pending with a fresh attempt budget. */
export async function redeliver(db: DbOrTx, organizationId: string, webhookId: string, id: string): Promise<Delivery | null> {
  const rows = await db
    .update(webhookDeliveries)
    .set({ status: 'pending', attempts: 0, availableAt: sql`now()`, leaseExpiresAt: null, leasedByAgentId: null, completedAt: null, lastError: null })
    .where(and(eq(webhookDeliveries.organizationId, organizationId), eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.id, id)))
    .returning();
  return rows[0] ?? null;
}

/**
 * Leases up to `limit` of the oldest available deliveries of webhooks routed to the agent. Rows
 * are locked with SKIP LOCKED, so concurrent leasers (on any instance) never get the same one.
 * Deliveries whose lease expired are available again, or dead once out of attempts.
 */
export async function leaseDeliveries(
  db: DbOrTx,
  organizationId: string,
  agentId: string,
  options: { limit: number; leaseSeconds: number; maxAttempts: number },
): Promise<Delivery[]> {
  await expireLeases(db, organizationId, options.maxAttempts);
  const leased = await executePrepared<{ id: string }>(db, 'lease_deliveries', sql`
    update webhook_deliveries d
       set status = 'leased',
           attempts = d.attempts + 1,
           lease_expires_at = now() + make_interval(secs => ${options.leaseSeconds}),
           leased_by_agent_id = ${agentId}
     where d.id in (
       -- The oldest due deliveries of each of the agent's webhooks (one short walk of the pending
       -- index per webhook, whatever the organization's backlog for other agents), then the
       -- oldest of those. Rows locked by a concurrent lease are skipped, never handed out twice.
       select c.id
         from webhooks w
         cross join lateral (
           select c.id
             from webhook_deliveries c
            where c.webhook_id = w.id
              and c.organization_id = ${organizationId}
              and c.status = 'pending'
              and c.available_at <= now()
            order by c.id
            limit ${options.limit}
            for update of c skip locked) c
        where w.organization_id = ${organizationId}
          and w.agent_id = ${agentId}
        order by c.id
        limit ${options.limit})
    returning d.id`);
  const ids = leased.map((row) => row.id);
  if (ids.length === 0) return [];
  const rows = await db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.id, ids)).orderBy(webhookDeliveries.id);
  return rows;
}

/**
 * Leased rows are found through the lease expiry index or by primary key, never through the
 * status indexes: a queue's UPDATEs leave an entry there for every delivery leased since the last
 * vacuum, acked ones included, and scans walk them all, more with every delivery. The planner
 * cannot see that (its statistics count live rows, and few are leased at once), so the status test
 * is written in a form no index can serve; the row is still required to be leased.
 */
const IS_LEASED = sql.raw(`(status = 'leased') is true`);

/** Expired leases go back to pending, or to dead when the delivery is out of attempts. */
export async function expireLeases(db: DbOrTx, organizationId: string | null, maxAttempts: number): Promise<number> {
  const scope = organizationId === null ? sql`true` : sql`organization_id = ${organizationId}`;
  const expired = await executePrepared(db, 'expire_leases', sql`
    update webhook_deliveries
       set status = case when attempts >= ${maxAttempts} then 'dead' else 'pending' end,
           lease_expires_at = null,
           last_error = coalesce(last_error, 'lease expired')
     where ${scope} and ${IS_LEASED} and lease_expires_at < now()
    returning id`);
  return expired.length;
}

export type FinishOutcome = 'done' | 'retry' | 'dead' | 'not_leased' | 'not_found';

/** Ack (done) or nack (retry later, or dead when out of attempts) a delivery the agent holds. */
export async function finishDelivery(
  db: DbOrTx,
  organizationId: string,
  agentId: string,
  id: string,
  outcome: { ack: true } | { ack: false; retryAfterSeconds: number; maxAttempts: number; error?: string | undefined },
): Promise<FinishOutcome> {
  const held = and(
    eq(webhookDeliveries.organizationId, organizationId),
    eq(webhookDeliveries.id, id),
    eq(webhookDeliveries.status, 'leased'),
    eq(webhookDeliveries.leasedByAgentId, agentId),
    sql`${webhookDeliveries.leaseExpiresAt} > now()`,
  );
  const rows = outcome.ack
    ? await db
        .update(webhookDeliveries)
        .set({ status: 'done', completedAt: sql`now()`, leaseExpiresAt: null })
        .where(held)
        .returning({ status: webhookDeliveries.status })
    : await db
        .update(webhookDeliveries)
        .set({
          status: sql`case when ${webhookDeliveries.attempts} >= ${outcome.maxAttempts} then 'dead' else 'pending' end`,
          availableAt: sql`now() + make_interval(secs => ${outcome.retryAfterSeconds})`,
          leaseExpiresAt: null,
          lastError: outcome.error ?? 'nack',
        })
        .where(held)
        .returning({ status: webhookDeliveries.status });
  const status = rows[0]?.status;
  if (status === 'done') return 'done';
  if (status === 'pending') return 'retry';
  if (status === 'dead') return 'dead';
  return notHeldOutcome(db, organizationId, agentId, id);
}

/**
 * Not held: tell "not yours / gone" (404) from "yours but no longer leased" (409). Yours: routed to
 * the agent now, or last leased by it (its webhook was re-routed to another agent since).
 */
async function notHeldOutcome(db: DbOrTx, organizationId: string, agentId: string, id: string): Promise<FinishOutcome> {
  const visible = await db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
    .where(
      and(
        eq(webhookDeliveries.organizationId, organizationId),
        eq(webhookDeliveries.id, id),
        or(eq(webhooks.agentId, agentId), eq(webhookDeliveries.leasedByAgentId, agentId)),
      ),
    )
    .limit(1);
  return visible.length > 0 ? 'not_leased' : 'not_found';
}

export interface Ack {
  organizationId: string;
  agentId: string;
  id: string;
}

/**
 * Acks several deliveries with one UPDATE (one commit), each only if its agent holds a live lease
 * on it — the same condition as finishDelivery. Those not acked get finishDelivery's diagnosis.
 */
export async function ackDeliveries(db: DbOrTx, acks: Ack[]): Promise<Settled<FinishOutcome>[]> {
  const json = JSON.stringify(acks.map((ack) => ({ id: ack.id, organization_id: ack.organizationId, agent_id: ack.agentId })));
  // Keyed by delivery, organization and agent: only the ack that holds the lease is answered done.
  const keyOf = (ack: { id: string; organization_id: string; agent_id: string }) => `${ack.id}|${ack.organization_id}|${ack.agent_id}`;
  let done: Set<string>;
  try {
    const acked = await executePrepared<{ id: string; organization_id: string; agent_id: string }>(db, 'ack_deliveries', sql`
      update webhook_deliveries d
         set status = 'done', completed_at = now(), lease_expires_at = null
        from (select distinct * from json_to_recordset((${json}::text)::json) as k(id uuid, organization_id uuid, agent_id uuid)) k
       where d.id = k.id and d.organization_id = k.organization_id and d.leased_by_agent_id = k.agent_id
         and ${IS_LEASED} and (d.lease_expires_at > now()) is true -- by primary key (see IS_LEASED)
      returning d.id, k.organization_id, k.agent_id`);
    done = new Set(acked.map(keyOf));
  } catch (error) {
    // One ack at a time only when a row's data was refused; an outage fails the batch as a whole.
    if (acks.length === 1 || isDatabaseUnavailable(error)) return acks.map(() => ({ ok: false, error }));
    return Promise.all(acks.map(async (ack) => (await ackDeliveries(db, [ack]))[0]!));
  }
  // A delivery acked twice in one batch by its holder: the first ack did it, a later one finds it finished.
  const answered = new Set<string>();
  return Promise.all(
    acks.map(async (ack): Promise<Settled<FinishOutcome>> => {
      const key = keyOf({ id: ack.id, organization_id: ack.organizationId, agent_id: ack.agentId });
      const first = !answered.has(key);
      answered.add(key);
      if (first && done.has(key)) return { ok: true, value: 'done' };
      try {
        return { ok: true, value: await notHeldOutcome(db, ack.organizationId, ack.agentId, ack.id) };
      } catch (error) {
        return { ok: false, error };
      }
    }),
  );
}

/** Group commit for acks: acks arriving together are written by one ackDeliveries. */
export function ackWriter(db: DbOrTx, options: BatchTuning = {}): Batcher<Ack, FinishOutcome> {
  return createBatcher<Ack, FinishOutcome>({ maxBatch: 100, maxInFlight: 2, ...options, run: (acks) => ackDeliveries(db, acks) });
}

/** Deletes deliveries older than the retention period in bounded batches; safe on every instance at once. */
export async function pruneDeliveries(db: DbOrTx, retentionDays: number, batchSize = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await db.execute(sql`
      delete from webhook_deliveries
       where id in (
         select id from webhook_deliveries
          where received_at < now() - make_interval(days => ${retentionDays})
          limit ${batchSize}
          for update skip locked)
      returning id`);
    const deleted = rowsOf(result).length;
    total += deleted;
    if (deleted < batchSize) return total;
  }
}

