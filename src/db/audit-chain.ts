// The audit log's hash chains: one per organization and one for the platform (organization_id
// null). Appends lock the chain's head row, so they serialize per chain across instances; verify
// walks a chain in sequence order and reports the first event that does not fit.
import { and, asc, count, eq, gt, isNull, sql, type SQL } from 'drizzle-orm';
import { auditEventHash, GENESIS_HASH } from '../crypto/audit-chain.js';
import { rowsOf, type Db, type DbOrTx } from './client.js';
import { uuidv7 } from './ids.js';
import { auditChainHeads as chainHeads, auditEvents, organizations } from './schema.js';

type AuditEventRow = typeof auditEvents.$inferSelect;
type NewAuditEventRow = typeof auditEvents.$inferInsert;

/** The chain of events with no organization. Organization chains are named by the organization id. */
const PLATFORM_CHAIN = 'platform';

const chainOf = (organizationId: string | null | undefined): string => organizationId ?? PLATFORM_CHAIN;

/** Platform first, then organization ids: every appender locks heads in this order, so none deadlock. */
const byLockOrder = (a: string, b: string) => (a === b ? 0 : a === PLATFORM_CHAIN ? -1 : b === PLATFORM_CHAIN ? 1 : a < b ? -1 : 1);

const chainCondition = (chain: string): SQL =>
  chain === PLATFORM_CHAIN ? isNull(auditEvents.organizationId) : eq(auditEvents.organizationId, chain);

interface Head {
  seq: number;
  hash: string;
}

/**
 * Locks the heads of `chains` (creating missing ones) and returns them. The organizations are
 * key-share locked first, in id order: a concurrent organization deletion then waits for us (or we
 * for it) before anyone holds a head, instead of the two waiting on each other.
 */
async function lockHeads(tx: DbOrTx, chains: string[]): Promise<Map<string, Head>> {
  const sorted = [...new Set(chains)].sort(byLockOrder);
  const orgIds = sorted.filter((chain) => chain !== PLATFORM_CHAIN);
  if (orgIds.length > 0) {
    await tx.execute(sql`select id from ${organizations} where id in (${sql.join(orgIds.map((id) => sql`${id}::uuid`), sql`, `)}) order by id for key share`);
  }
  const rows = await tx
    .insert(chainHeads)
    .values(sorted.map((chain) => ({ chain, organizationId: chain === PLATFORM_CHAIN ? null : chain, seq: 0, hash: GENESIS_HASH })))
    // A no-op update: it takes the row lock (waiting for any other appender) and returns the head.
    .onConflictDoUpdate({ target: chainHeads.chain, set: { seq: sql`${sql.identifier('audit_chain_heads')}.${sql.identifier('seq')}` } })
    .returning({ chain: chainHeads.chain, seq: chainHeads.seq, hash: chainHeads.hash });
  return new Map(rows.map((row) => [row.chain, { seq: Number(row.seq), hash: row.hash }]));
}

async function saveHead(tx: DbOrTx, chain: string, last: AuditEventRow) {
  await tx
    .update(chainHeads)
    .set({ seq: last.seq!, hash: last.hash!, eventId: last.id, occurredAt: last.occurredAt, updatedAt: new Date() })
    .where(eq(chainHeads.chain, chain));
}

/** Fields an event is hashed over, as they will read back from the database. */
function chained(event: NewAuditEventRow, chain: string, seq: number, prevHash: string): AuditEventRow {
  const row: AuditEventRow = {
    id: event.id ?? uuidv7(),
    organizationId: event.organizationId ?? null,
    occurredAt: event.occurredAt ?? new Date(),
    actorType: event.actorType,
    actorId: event.actorId ?? null,
    clientIp: event.clientIp ?? null,
    action: event.action,
    targetType: event.targetType ?? null,
    targetId: event.targetId ?? null,
    outcome: event.outcome,
    requestId: event.requestId ?? null,
    // What jsonb will give back: no undefined members, Dates as strings.
    details: JSON.parse(JSON.stringify(event.details ?? {})) as Record<string, unknown>,
    count: event.count ?? 1,
    seq,
    prevHash,
    hash: '',
  };
  row.hash = hashOf(row, chain);
  return row;
}

function hashOf(row: AuditEventRow, chain: string): string {
  return auditEventHash({ ...row, chain, seq: row.seq!, prevHash: row.prevHash!, count: Number(row.count) });
}

/** Appends `events` to their chains inside `tx`; the caller's transaction holds the heads until it commits. */
export async function appendAuditEvents(tx: DbOrTx, events: NewAuditEventRow[]): Promise<void> {
  const heads = await lockHeads(
    tx,
    events.map((event) => chainOf(event.organizationId)),
  );
  const rows: AuditEventRow[] = [];
  const last = new Map<string, AuditEventRow>();
  for (const event of events) {
    const chain = chainOf(event.organizationId);
    const head = last.get(chain) ?? heads.get(chain)!;
    const row = chained(event, chain, Number(head.seq) + 1, head.hash!);
    rows.push(row);
    last.set(chain, row);
  }
  await tx.insert(auditEvents).values(rows);
  for (const [chain, row] of last) await saveHead(tx, chain, row);
}

/**
 * Chains the rows written before the chain existed (a database upgraded from an older version):
 * once, in id (= time) order, in one transaction, when no chain has been started yet. After that,
 * a row without a sequence number is something verify must report, never something to adopt.
 */
export async function chainLegacyAuditEvents(db: Db, batchSize = 1000): Promise<number> {
  const [started] = await db.select({ chain: chainHeads.chain }).from(chainHeads).limit(1);
  if (started) return 0;
  const [pending] = await db.select({ id: auditEvents.id }).from(auditEvents).where(isNull(auditEvents.seq)).limit(1);
  if (!pending) return 0;
  return db.transaction(async (tx) => {
    // Another instance may have done it while we looked.
    await tx.execute(sql`lock table ${chainHeads} in exclusive mode`);
    const [again] = await tx.select({ chain: chainHeads.chain }).from(chainHeads).limit(1);
    if (again) return 0;
    const chains = rowsOf<{ organization_id: string | null }>(
      await tx.execute(sql`select distinct organization_id from ${auditEvents} where seq is null`),
    ).map((row) => chainOf(row.organization_id));
    const heads = await lockHeads(tx, chains);
    let total = 0;
    for (const chain of [...heads.keys()].sort(byLockOrder)) {
      let head = heads.get(chain)!;
      for (;;) {
        const batch = await tx
          .select()
          .from(auditEvents)
          .where(and(chainCondition(chain), isNull(auditEvents.seq)))
          .orderBy(asc(auditEvents.id))
          .limit(batchSize);
        if (batch.length === 0) break;
        let prev = head;
        const rows = batch.map((row) => {
          const linked: AuditEventRow = { ...row, seq: prev.seq + 1, prevHash: prev.hash };
          linked.hash = hashOf(linked, chain);
          prev = { seq: prev.seq + 1, hash: linked.hash };
          return linked;
        });
        await tx.execute(sql`
          update ${auditEvents} as e set seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
          from (values ${sql.join(
            rows.map((row) => sql`(${row.id}::uuid, ${row.seq}::bigint, ${row.prevHash}, ${row.hash})`),
            sql`, `,
          )}) as v(id, seq, prev_hash, hash)
          where e.id = v.id`);
        await saveHead(tx, chain, rows.at(-1)!);
        head = prev;
        total += rows.length;
      }
    }
    return total;
  });
}

export type BreakReason = 'sequence_gap' | 'prev_hash_mismatch' | 'hash_mismatch' | 'unchained' | 'head_mismatch';

export const BREAK_REASONS: Record<BreakReason, string> = {
  sequence_gap: 'sequence gap: events before this one are missing (deleted) or its seq was changed',
  prev_hash_mismatch: "prev_hash mismatch: it does not follow the previous event (reordered, or the previous event was rewritten)",
  hash_mismatch: 'hash mismatch: its stored fields no longer match its hash (edited)',
  unchained: 'unchained: the row has no sequence number (written outside Switchboard)',
  head_mismatch: 'head mismatch: the chain ends before its recorded head (the latest events were deleted) or the head record is missing',
};

export interface ChainHead {
  seq: number;
  hash: string;
  event_id: string | null;
  occurred_at: Date | null;
}

export interface ChainReport {
  chain: string;
  events: number;
  /** The last event the walk reached in sequence order; null for an empty chain. */
  head: ChainHead | null;
  ok: boolean;
  first_break?: { event_id: string | null; seq: number | null; reason: BreakReason };
}

const WALK_BATCH = 1000;

/** Walks one chain in a consistent snapshot and reports the first event that does not fit. */
export async function verifyAuditChain(db: Db, chain: string): Promise<ChainReport> {
  return db.transaction(
    async (tx) => {
      const where = chainCondition(chain);
      const [{ events } = { events: 0 }] = await tx.select({ events: count() }).from(auditEvents).where(where);
      const [recorded] = await tx.select().from(chainHeads).where(eq(chainHeads.chain, chain));
      const report = (head: ChainHead | null, first_break?: ChainReport['first_break']): ChainReport =>
        first_break ? { chain, events: Number(events), head, ok: false, first_break } : { chain, events: Number(events), head, ok: true };
      let expected = { seq: 1, hash: GENESIS_HASH };
      let head: ChainHead | null = null;
      for (;;) {
        const batch = await tx
          .select()
          .from(auditEvents)
          .where(and(where, gt(auditEvents.seq, expected.seq - 1)))
          .orderBy(asc(auditEvents.seq))
          .limit(WALK_BATCH);
        for (const row of batch) {
          const at = { event_id: row.id, seq: Number(row.seq) };
          if (Number(row.seq) !== expected.seq) return report(head, { ...at, reason: 'sequence_gap' });
          if (row.prevHash !== expected.hash) return report(head, { ...at, reason: 'prev_hash_mismatch' });
          if (row.hash !== hashOf(row, chain)) return report(head, { ...at, reason: 'hash_mismatch' });
          head = { seq: Number(row.seq), hash: row.hash, event_id: row.id, occurred_at: row.occurredAt };
          expected = { seq: expected.seq + 1, hash: row.hash };
        }
        if (batch.length < WALK_BATCH) break;
      }
      // Rows with seq <= 0 never come up in the walk above.
      const [stray] = await tx
        .select({ id: auditEvents.id, seq: auditEvents.seq })
        .from(auditEvents)
        .where(and(where, sql`(${auditEvents.seq} is null or ${auditEvents.seq} < 1)`))
        .orderBy(asc(auditEvents.id))
        .limit(1);
      if (stray) return report(head, { event_id: stray.id, seq: stray.seq, reason: stray.seq === null ? 'unchained' : 'sequence_gap' });
      const recordedSeq = recorded ? Number(recorded.seq) : 0;
      if (recordedSeq !== (head?.seq ?? 0) || (recorded && recorded.hash !== (head?.hash ?? GENESIS_HASH))) {
        return report(head, { event_id: recorded?.eventId ?? head?.event_id ?? null, seq: recorded ? recordedSeq : (head?.seq ?? null), reason: 'head_mismatch' });
      }
      return report(head);
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/** Every chain (the platform's and each organization's), or one organization's. */
export async function verifyAuditChains(db: Db, options: { organizationId?: string | undefined } = {}): Promise<ChainReport[]> {
  const chains = options.organizationId
    ? [options.organizationId]
    : [PLATFORM_CHAIN, ...(await db.select({ id: organizations.id }).from(organizations).orderBy(asc(organizations.id))).map((org) => org.id)];
  const reports: ChainReport[] = [];
  for (const chain of chains) reports.push(await verifyAuditChain(db, chain));
  return reports;
}

export interface ChainHeadRecord extends ChainHead {
  chain: string;
  organization_id: string | null;
  updated_at: Date;
}

const toHeadRecord = (row: typeof chainHeads.$inferSelect): ChainHeadRecord => ({
  chain: row.chain,
  organization_id: row.organizationId,
  seq: Number(row.seq),
  hash: row.hash,
  event_id: row.eventId,
  occurred_at: row.occurredAt,
  updated_at: row.updatedAt,
});

/** Each chain's recorded head, from the heads table (no scan of the log). */
export async function auditChainHeads(db: Db): Promise<ChainHeadRecord[]> {
  const rows = await db.select().from(chainHeads);
  return rows.sort((a, b) => byLockOrder(a.chain, b.chain)).map(toHeadRecord);
}

/** One chain's recorded head (the organization's, or the platform's for null); null before its first event. */
export async function auditChainHead(db: Db, organizationId: string | null): Promise<ChainHeadRecord | null> {
  const [row] = await db.select().from(chainHeads).where(eq(chainHeads.chain, chainOf(organizationId)));
  return row ? toHeadRecord(row) : null;
}
