// Operational signals for the status endpoints and `doctor`: bounded, index-backed queries only.
// organizationId null means the whole platform; otherwise every query is scoped to that tenant.
import { eq, sql, type SQL } from 'drizzle-orm';
import type { Keyring } from '../crypto/keyring.js';
import type { Db, DbOrTx } from './client.js';
import { rowsOf } from './client.js';
import { checkCanaries } from './canaries.js';
import { ciphertextsByKey } from './key-rotation.js';
import { agents, auditEvents, googleConnections, webhookDeliveries } from './schema.js';

/** Backlog counts stop here, so a huge backlog costs no more than this many index entries. */
export const COUNT_CAP = 10_000;

export interface DeliverySignals {
  pending: number;
  leased: number;
  dead: number;
  /** Seconds the oldest delivery that is due (pending, available_at passed) has been waiting; null when none. */
  oldest_pending_age_s: number | null;
}

function scoped(organizationId: string | null): SQL {
  return organizationId === null ? sql`true` : sql`${webhookDeliveries.organizationId} = ${organizationId}`;
}

/**
 * Counts walk the (organization_id,) status, available_at index and stop at COUNT_CAP; the oldest
 * due delivery is the first entry of the same index.
 */
export async function deliverySignals(db: DbOrTx, organizationId: string | null): Promise<DeliverySignals> {
  const capped = (status: 'pending' | 'leased' | 'dead') => sql`(
    select count(*)::int from (
      select 1 from ${webhookDeliveries}
       where ${scoped(organizationId)} and ${webhookDeliveries.status} = ${status}
       order by ${webhookDeliveries.availableAt}
       limit ${COUNT_CAP}) c)`;
  const result = await db.execute(sql`
    select ${capped('pending')} as pending,
           ${capped('leased')} as leased,
           ${capped('dead')} as dead,
           (select extract(epoch from now() - ${webhookDeliveries.availableAt})::float8
              from ${webhookDeliveries}
             where ${scoped(organizationId)} and ${webhookDeliveries.status} = 'pending' and ${webhookDeliveries.availableAt} <= now()
             order by ${webhookDeliveries.availableAt}
             limit 1) as oldest_pending_age_s`);
  const row = rowsOf<{ pending: number; leased: number; dead: number; oldest_pending_age_s: number | null }>(result)[0]!;
  const age = row.oldest_pending_age_s === null ? null : Math.max(0, Math.floor(Number(row.oldest_pending_age_s)));
  return { pending: Number(row.pending), leased: Number(row.leased), dead: Number(row.dead), oldest_pending_age_s: age };
}

export interface AgentSignals {
  online: number;
  offline: number;
  /** Created but never authenticated. */
  never_seen: number;
  disabled: number;
}

/** Same definitions as the agents API (AGENT_OFFLINE_AFTER_S); one pass over the agents table (one row per agent). */
export async function agentSignals(db: DbOrTx, organizationId: string | null, offlineAfterS: number): Promise<AgentSignals> {
  const cutoff = sql`now() - make_interval(secs => ${offlineAfterS})`;
  const rows = await db
    .select({
      online: sql<number>`count(*) filter (where not ${agents.disabled} and ${agents.lastSeenAt} > ${cutoff})::int`,
      offline: sql<number>`count(*) filter (where not ${agents.disabled} and ${agents.lastSeenAt} <= ${cutoff})::int`,
      never_seen: sql<number>`count(*) filter (where not ${agents.disabled} and ${agents.lastSeenAt} is null)::int`,
      disabled: sql<number>`count(*) filter (where ${agents.disabled})::int`,
    })
    .from(agents)
    .where(organizationId === null ? undefined : eq(agents.organizationId, organizationId));
  const row = rows[0]!;
  return { online: Number(row.online), offline: Number(row.offline), never_seen: Number(row.never_seen), disabled: Number(row.disabled) };
}

/** Audit actions whose aggregated `count` the status endpoints sum over the recent window. */
export const FAILURE_ACTIONS = ['auth.failed', 'agent.auth_failed', 'webhook.signature_failed', 'rate_limit.exceeded', 'oauth.refresh_failed'] as const;
export type FailureAction = (typeof FAILURE_ACTIONS)[number];

/**
 * Attempts per failure action over the last `windowS` seconds, across every instance (the audit
 * aggregator writes one row per source with a `count`). The window is read through the
 * audit_events (action, occurred_at) index first, then filtered by organization: the planner must
 * not walk an organization's whole audit history instead.
 */
export async function recentFailures(db: DbOrTx, organizationId: string | null, windowS: number): Promise<Record<FailureAction, number>> {
  const result = await db.execute(sql`
    with recent as materialized (
      select ${auditEvents.organizationId} as organization_id, ${auditEvents.action} as action, ${auditEvents.count} as n
        from ${auditEvents}
       where ${auditEvents.action} in ${[...FAILURE_ACTIONS]}
         and ${auditEvents.occurredAt} >= now() - make_interval(secs => ${windowS}))
    select action, coalesce(sum(n), 0)::bigint as n
      from recent
     where ${organizationId === null ? sql`true` : sql`organization_id = ${organizationId}`}
     group by action`);
  const totals = Object.fromEntries(FAILURE_ACTIONS.map((action) => [action, 0])) as Record<FailureAction, number>;
  for (const row of rowsOf<{ action: string; n: string | number }>(result)) totals[row.action as FailureAction] = Number(row.n);
  return totals;
}

export interface ConnectionSignals {
  connected: number;
  expired: number;
  error: number;
}

/** Google connections by state over the platform (one row per organization). */
export async function googleConnectionSignals(db: DbOrTx): Promise<ConnectionSignals> {
  const rows = await db
    .select({ status: googleConnections.status, n: sql<number>`count(*)::int` })
    .from(googleConnections)
    .groupBy(googleConnections.status);
  const counts: ConnectionSignals = { connected: 0, expired: 0, error: 0 };
  for (const row of rows) counts[row.status] = Number(row.n);
  return counts;
}

export interface KeyringSignals {
  current_key_id: string;
  configured_key_ids: string[];
  /** Key ids other than the current one that still protect stored secrets. */
  old_key_ids_in_use: string[];
  ciphertexts_by_key: Record<string, number>;
  canary_ok: boolean;
  unknown_key_ids: string[];
  failing_key_ids: string[];
}

/**
 * Which keys protect stored secrets. Counting reads the webhooks and google_connections tables
 * (configuration, one row per endpoint or organization, never the delivery or audit tables).
 */
export async function keyringSignals(db: Db, keyring: Keyring): Promise<KeyringSignals> {
  const canaries = await checkCanaries(db, keyring);
  const byKey = await ciphertextsByKey(db);
  return {
    current_key_id: keyring.currentKeyId,
    configured_key_ids: [...keyring.keyIds],
    old_key_ids_in_use: Object.keys(byKey).filter((id) => id !== keyring.currentKeyId).sort(),
    ciphertexts_by_key: byKey,
    canary_ok: canaries.ok,
    unknown_key_ids: canaries.unknown_key_ids,
    failing_key_ids: canaries.failing_key_ids,
  };
}
