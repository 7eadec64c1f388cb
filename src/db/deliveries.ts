// Webhook deliveries: stored once per sender delivery id, leased to agents exclusively, acked,
// retried, dead-lettered and pruned.
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import type { DbOrTx } from './client.js';
import { rowsOf } from './client.js';
import { afterCursor, toPage, type Page } from './pagination.js';
import { webhookDeliveries, webhooks } from './schema.js';

export type Delivery = typeof webhookDeliveries.$inferSelect;
export type DeliveryStatus = Delivery['status'];

export interface NewDelivery {
  organizationId: string;
  webhookId: string;
  deliveryKey: string | null;
  contentType: string | null;
  body: Buffer;
  bodySha256: string;
  headers: Record<string, string>;
  sourceIp: string;
}

/** Stores a delivery; a known delivery key for the same webhook stores nothing and returns the original id. */
export async function storeDelivery(db: DbOrTx, input: NewDelivery): Promise<{ id: string; duplicate: boolean }> {
  const inserted = await db
    .insert(webhookDeliveries)
    .values({ ...input, size: input.body.length })
    .onConflictDoNothing({ target: [webhookDeliveries.webhookId, webhookDeliveries.deliveryKey], where: sql`delivery_key is not null` })
    .returning({ id: webhookDeliveries.id });
  if (inserted[0]) return { id: inserted[0].id, duplicate: false };
  const existing = await db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.webhookId, input.webhookId), eq(webhookDeliveries.deliveryKey, input.deliveryKey!)))
    .limit(1);
  return { id: existing[0]!.id, duplicate: true };
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
  const result = await db.execute(sql`
    update webhook_deliveries d
       set status = 'leased',
           attempts = d.attempts + 1,
           lease_expires_at = now() + make_interval(secs => ${options.leaseSeconds}),
           leased_by_agent_id = ${agentId}
     where d.id in (
       select c.id
         from webhook_deliveries c
         join webhooks w on w.id = c.webhook_id
        where c.organization_id = ${organizationId}
          and w.organization_id = ${organizationId}
          and w.agent_id = ${agentId}
          and c.status = 'pending'
          and c.available_at <= now()
        order by c.id
        limit ${options.limit}
        for update of c skip locked)
    returning d.id`);
  const ids = rowsOf<{ id: string }>(result).map((row) => row.id);
  if (ids.length === 0) return [];
  const rows = await db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.id, ids)).orderBy(webhookDeliveries.id);
  return rows;
}

/** Expired leases go back to pending, or to dead when the delivery is out of attempts. */
export async function expireLeases(db: DbOrTx, organizationId: string | null, maxAttempts: number): Promise<number> {
  const scope = organizationId === null ? sql`true` : sql`organization_id = ${organizationId}`;
  const result = await db.execute(sql`
    update webhook_deliveries
       set status = case when attempts >= ${maxAttempts} then 'dead' else 'pending' end,
           lease_expires_at = null,
           leased_by_agent_id = null,
           last_error = coalesce(last_error, 'lease expired')
     where ${scope} and status = 'leased' and lease_expires_at < now()
    returning id`);
  return rowsOf(result).length;
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
          leasedByAgentId: null,
          lastError: outcome.error ?? 'nack',
        })
        .where(held)
        .returning({ status: webhookDeliveries.status });
  const status = rows[0]?.status;
  if (status === 'done') return 'done';
  if (status === 'pending') return 'retry';
  if (status === 'dead') return 'dead';
  // Not held: tell "not yours / gone" (404) from "yours but no longer leased" (409).
  const visible = await db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
    .where(and(eq(webhookDeliveries.organizationId, organizationId), eq(webhookDeliveries.id, id), eq(webhooks.agentId, agentId)))
    .limit(1);
  return visible.length > 0 ? 'not_leased' : 'not_found';
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

