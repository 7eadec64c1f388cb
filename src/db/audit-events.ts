// The append-only audit log. Rows are never updated or deleted by the application; each is
// chained to its predecessor in its organization's (or the platform's) chain (db/audit-chain.ts).
import { and, desc, eq, gte, is, isNull, lt, type SQL } from 'drizzle-orm';
import { PgTransaction } from 'drizzle-orm/pg-core';
import { appendAuditEvents } from './audit-chain.js';
import type { DbOrTx } from './client.js';
import { afterCursor, toPage, type Page } from './pagination.js';
import { auditEvents } from './schema.js';

export type AuditEvent = typeof auditEvents.$inferSelect;
export type NewAuditEvent = Omit<typeof auditEvents.$inferInsert, 'id' | 'occurredAt' | 'seq' | 'prevHash' | 'hash'> & { occurredAt?: Date };
export type ActorType = AuditEvent['actorType'];

/** Who did something: an authenticated principal, the CLI, or nobody known. */
export interface AuditActor {
  actorType: ActorType;
  actorId: string | null;
  clientIp: string | null;
  requestId: string | null;
}

export type AuditInput = Pick<NewAuditEvent, 'action' | 'targetType' | 'targetId'> & {
  outcome?: NewAuditEvent['outcome'];
  details?: Record<string, unknown>;
};

export function auditRow(actor: AuditActor, organizationId: string | null, input: AuditInput): NewAuditEvent {
  return { organizationId, ...actor, outcome: 'success', details: {}, ...input };
}

/**
 * Appends to the events' chains. Inside a transaction the chain heads stay locked until it
 * commits (call this once per transaction, near its end); on the bare database it opens its own.
 */
export async function recordAuditEvents(db: DbOrTx, events: NewAuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  if (is(db, PgTransaction)) await appendAuditEvents(db, events);
  else await db.transaction((tx) => appendAuditEvents(tx, events));
}

export interface AuditFilter {
  action?: string | undefined;
  actorType?: ActorType | undefined;
  actorId?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
}

/** organizationId null lists the platform's own events. */
export async function listAuditEvents(db: DbOrTx, organizationId: string | null, filter: AuditFilter, page: Page) {
  const conditions: (SQL | undefined)[] = [
    organizationId === null ? isNull(auditEvents.organizationId) : eq(auditEvents.organizationId, organizationId),
    afterCursor(auditEvents.id, page),
    filter.action ? eq(auditEvents.action, filter.action) : undefined,
    filter.actorType ? eq(auditEvents.actorType, filter.actorType) : undefined,
    filter.actorId ? eq(auditEvents.actorId, filter.actorId) : undefined,
    filter.since ? gte(auditEvents.occurredAt, filter.since) : undefined,
    filter.until ? lt(auditEvents.occurredAt, filter.until) : undefined,
  ];
  const rows = await db
    .select()
    .from(auditEvents)
    .where(and(...conditions))
    .orderBy(desc(auditEvents.id))
    .limit(page.limit + 1);
  return toPage(rows, page);
}
