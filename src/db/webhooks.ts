// Webhook endpoints. Secrets are stored encrypted by the caller (the keyring lives above the
// data layer); this module only moves ciphertext.
import { and, desc, eq, sql } from 'drizzle-orm';
import { createBatcher, type Batcher, type BatchTuning } from './batching.js';
import type { DbOrTx } from './client.js';
import { afterCursor, toPage, type Page } from './pagination.js';
import { agents, webhooks } from './schema.js';

export type Webhook = typeof webhooks.$inferSelect;
export type SignatureScheme = Webhook['signatureScheme'];

/** The associated data binding a webhook's secret ciphertexts (current and previous) to its row. */
export const secretAad = (organizationId: string, webhookId: string) => `webhooks:${organizationId}:${webhookId}:signing_secret`;

export interface NewWebhook {
  id: string;
  name: string;
  description?: string | null | undefined;
  agentId?: string | null | undefined;
  enabled?: boolean | undefined;
  signatureScheme?: SignatureScheme | undefined;
  secretCiphertext: string;
}

export async function createWebhook(db: DbOrTx, organizationId: string, input: NewWebhook): Promise<Webhook> {
  const rows = await db.insert(webhooks).values({ ...input, organizationId }).returning();
  return rows[0]!;
}

export async function getWebhook(db: DbOrTx, organizationId: string, id: string): Promise<Webhook | null> {
  const rows = await db
    .select()
    .from(webhooks)
    .where(and(eq(webhooks.organizationId, organizationId), eq(webhooks.id, id)))
    .limit(1);
  return rows[0] ?? null;
}

/**
 * The ingest path knows only the webhook id from the URL; it finds the tenant. Concurrent ingests
 * share one query (see batching.ts). Ingest keeps the rows it read (routes/hooks/webhook-cache.ts)
 * and the INSERT re-checks them (storeDeliveries), so a disable, delete or secret rotation is
 * seen by the next delivery, on every instance.
 */
export function webhookIngestLookup(db: DbOrTx, options: BatchTuning = {}): Batcher<string, Webhook | null> {
  // Prepared once: the SQL is built a single time and the batch's ids travel as one array parameter.
  const query = db
    .select()
    .from(webhooks)
    .where(sql`${webhooks.id} = any(${sql.placeholder('ids')}::uuid[])`)
    .prepare('webhooks_for_ingest');
  return createBatcher<string, Webhook | null>({
    maxBatch: 100,
    maxInFlight: 4,
    ...options,
    async run(ids) {
      const rows = await query.execute({ ids: [...new Set(ids)] });
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => ({ ok: true, value: byId.get(id) ?? null }));
    },
  });
}

export async function listWebhooks(db: DbOrTx, organizationId: string, page: Page) {
  const rows = await db
    .select()
    .from(webhooks)
    .where(and(eq(webhooks.organizationId, organizationId), afterCursor(webhooks.id, page)))
    .orderBy(desc(webhooks.id))
    .limit(page.limit + 1);
  return toPage(rows, page);
}

export interface WebhookChanges {
  name?: string | undefined;
  description?: string | null | undefined;
  agentId?: string | null | undefined;
  enabled?: boolean | undefined;
  signatureScheme?: SignatureScheme | undefined;
}

export async function updateWebhook(db: DbOrTx, organizationId: string, id: string, changes: WebhookChanges): Promise<Webhook | null> {
  const rows = await db
    .update(webhooks)
    .set({ ...changes, updatedAt: sql`now()` })
    .where(and(eq(webhooks.organizationId, organizationId), eq(webhooks.id, id)))
    .returning();
  return rows[0] ?? null;
}

/**
 * Replaces the secret; the one it replaces keeps verifying for overlapSeconds (0: not at all). The
 * replaced secret is the row's as the UPDATE finds it: of two rotations at once, the later one
 * keeps the earlier one's secret as previous, never one that no longer exists.
 */
export async function rotateWebhookSecret(
  db: DbOrTx,
  organizationId: string,
  id: string,
  secretCiphertext: string,
  overlapSeconds: number,
): Promise<Webhook | null> {
  const rows = await db
    .update(webhooks)
    .set({
      secretCiphertext,
      previousSecretCiphertext: overlapSeconds > 0 ? sql`${webhooks.secretCiphertext}` : null,
      previousSecretExpiresAt: overlapSeconds > 0 ? sql`now() + make_interval(secs => ${overlapSeconds})` : null,
      updatedAt: sql`now()`,
    })
    .where(and(eq(webhooks.organizationId, organizationId), eq(webhooks.id, id)))
    .returning();
  return rows[0] ?? null;
}

export async function deleteWebhook(db: DbOrTx, organizationId: string, id: string): Promise<Webhook | null> {
  const rows = await db
    .delete(webhooks)
    .where(and(eq(webhooks.organizationId, organizationId), eq(webhooks.id, id)))
    .returning();
  return rows[0] ?? null;
}

export async function agentExists(db: DbOrTx, organizationId: string, agentId: string): Promise<boolean> {
  const rows = await db
    .select({ id: agents.id })
    .from(agents)
    .where(and(eq(agents.organizationId, organizationId), eq(agents.id, agentId)))
    .limit(1);
  return rows.length > 0;
}
