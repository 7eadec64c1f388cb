// The status documents behind GET /api/v1/status (platform) and /api/v1/organization/status: the
// signals an operator pages on, each warning with a stable code. Every database read is bounded
// (see db/status.ts) and the whole document by READINESS_TIMEOUT_MS: a slow database yields a
// degraded document, never a hung request.
import { performance } from 'node:perf_hooks';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import { pingDatabase, type Database } from '../db/client.js';
import { auditChainHead, type ChainHeadRecord } from '../db/audit-chain.js';
import { withTimeout } from '../db/health.js';
import { migrationStatus } from '../db/migrate.js';
import { getGoogleConnection, type GoogleConnection } from '../db/oauth.js';
import {
  agentSignals,
  COUNT_CAP,
  deliverySignals,
  googleConnectionSignals,
  keyringSignals,
  recentFailures,
  type AgentSignals,
  type ConnectionSignals,
  type DeliverySignals,
  type FailureAction,
  type KeyringSignals,
} from '../db/status.js';
import { VERSION } from '../version.js';

/** The warning and paging thresholds; docs/operations/README.md (SLO table) lists the same numbers. */
const THRESHOLDS = {
  /** Dead deliveries waiting for an operator (redeliver) — warn at this many. */
  deadDeliveries: 1,
  /** Seconds the oldest due delivery has waited for an agent. */
  pendingAgeS: 300,
  /** Authentication failures (API keys, admin token, agent tokens, webhook signatures) per hour. */
  authFailuresPerHour: 100,
  rateLimitRejectionsPerHour: 1000,
  oauthRefreshFailuresPerHour: 1,
} as const;

const WINDOW_S = 3600;

export interface Warning {
  code: string;
  message: string;
}

export interface LastHour {
  window_s: number;
  auth_failures: number;
  webhook_signature_failures: number;
  rate_limit_rejections: number;
  oauth_refresh_failures: number;
  by_action: Record<FailureAction, number>;
}

export interface PlatformStatus {
  health: { ok: boolean; warnings: Warning[] };
  version: string;
  uptime_s: number;
  generated_at: string;
  database: { kind: 'postgres' | 'embedded'; reachable: boolean; latency_ms: number | null; migrations: { applied: number; pending: number } | null };
  keyring: KeyringSignals | null;
  redis: { configured: boolean; reachable: boolean | null };
  google_oauth: { configured: boolean; connections: ConnectionSignals | null };
  deliveries: (DeliverySignals & { count_cap: number }) | null;
  agents: AgentSignals | null;
  last_hour: LastHour | null;
  audit_chain: AuditChainSignal | null;
}

/** The head of an audit chain: compare it with a copy kept elsewhere to detect a rewritten log. */
export interface AuditChainSignal {
  seq: number;
  hash: string;
  event_id: string | null;
  occurred_at: string | null;
}

function chainSignal(head: ChainHeadRecord | null): AuditChainSignal {
  return head
    ? { seq: head.seq, hash: head.hash, event_id: head.event_id, occurred_at: head.occurred_at?.toISOString() ?? null }
    : { seq: 0, hash: '', event_id: null, occurred_at: null };
}

export interface StatusSources {
  database: Database;
  keyring: Keyring;
  config: Config;
  /** Pings Redis: null when it is not configured. */
  redisReachable(): Promise<boolean | null>;
}

function lastHour(byAction: Record<FailureAction, number>): LastHour {
  return {
    window_s: WINDOW_S,
    auth_failures: byAction['auth.failed'] + byAction['agent.auth_failed'] + byAction['webhook.signature_failed'],
    webhook_signature_failures: byAction['webhook.signature_failed'],
    rate_limit_rejections: byAction['rate_limit.exceeded'],
    oauth_refresh_failures: byAction['oauth.refresh_failed'],
    by_action: byAction,
  };
}

/** Runs every probe against one deadline; a probe that fails or misses it answers null. */
function bounded(deadline: number, unavailable: string[]) {
  return async <T>(name: string, probe: () => Promise<T>): Promise<T | null> => {
    try {
      return await withTimeout(probe(), Math.max(1, deadline - performance.now()));
    } catch {
      unavailable.push(name);
      return null;
    }
  };
}

function backlogWarnings(deliveries: DeliverySignals | null, hour: LastHour | null): Warning[] {
  const warnings: Warning[] = [];
  if (deliveries && deliveries.dead >= THRESHOLDS.deadDeliveries) {
    warnings.push({ code: 'dead_deliveries', message: `${deliveries.dead >= COUNT_CAP ? `${COUNT_CAP}+` : deliveries.dead} deliveries are dead (out of attempts)` });
  }
  if (deliveries?.oldest_pending_age_s != null && deliveries.oldest_pending_age_s >= THRESHOLDS.pendingAgeS) {
    warnings.push({ code: 'pending_deliveries_stale', message: `the oldest due delivery has waited ${deliveries.oldest_pending_age_s} s for an agent` });
  }
  if (hour && hour.auth_failures >= THRESHOLDS.authFailuresPerHour) {
    warnings.push({ code: 'auth_failure_spike', message: `${hour.auth_failures} authentication failures in the last hour` });
  }
  if (hour && hour.rate_limit_rejections >= THRESHOLDS.rateLimitRejectionsPerHour) {
    warnings.push({ code: 'rate_limit_spike', message: `${hour.rate_limit_rejections} requests rejected by rate limits in the last hour` });
  }
  if (hour && hour.oauth_refresh_failures >= THRESHOLDS.oauthRefreshFailuresPerHour) {
    warnings.push({ code: 'oauth_refresh_failures', message: `${hour.oauth_refresh_failures} Google token refreshes failed in the last hour` });
  }
  return warnings;
}

function incomplete(unavailable: string[]): Warning[] {
  return unavailable.length === 0
    ? []
    : [{ code: 'status_incomplete', message: `no answer in time for: ${unavailable.join(', ')}` }];
}

export async function platformStatus(sources: StatusSources, startedAt = performance.now()): Promise<PlatformStatus> {
  const { database, keyring, config } = sources;
  const db = database.db;
  const deadline = startedAt + config.readinessTimeoutMs;
  const unavailable: string[] = [];
  const probe = bounded(deadline, unavailable);
  const warnings: Warning[] = [];

  const redisProbe = probe('redis', () => sources.redisReachable());
  const pingStarted = performance.now();
  const reachable = (await probe('database', () => pingDatabase(db))) !== null;
  const latency = reachable ? Math.round((performance.now() - pingStarted) * 10) / 10 : null;

  let migrations: { applied: number; pending: number } | null = null;
  let keys: KeyringSignals | null = null;
  let connections: ConnectionSignals | null = null;
  let deliveries: DeliverySignals | null = null;
  let agentCounts: AgentSignals | null = null;
  let hour: LastHour | null = null;
  let chain: AuditChainSignal | null = null;
  if (reachable) {
    migrations = await probe('migrations', () => migrationStatus(db));
    // Before the schema exists there is nothing else to read.
    if (migrations && migrations.applied > 0) {
      [keys, connections, deliveries, agentCounts, hour, chain] = await Promise.all([
        probe('keyring', () => keyringSignals(db, keyring)),
        probe('google_oauth', () => googleConnectionSignals(db)),
        probe('deliveries', () => deliverySignals(db, null)),
        probe('agents', () => agentSignals(db, null, config.agentOfflineAfterS)),
        probe('last_hour', async () => lastHour(await recentFailures(db, null, WINDOW_S))),
        probe('audit_chain', async () => chainSignal(await auditChainHead(db, null))),
      ]);
    }
  } else {
    unavailable.splice(unavailable.indexOf('database'), 1);
    warnings.push({ code: 'database_unreachable', message: 'the database did not answer a round-trip in time' });
  }
  const redis = await redisProbe;

  if (migrations && migrations.pending > 0) {
    warnings.push({ code: 'migrations_pending', message: `${migrations.pending} migrations shipped with this build are not applied` });
  }
  if (keys && !keys.canary_ok) {
    warnings.push({
      code: 'keyring_canary_failed',
      message: `the configured encryption keys cannot decrypt this database (unknown: ${keys.unknown_key_ids.join(', ') || 'none'}; failing: ${keys.failing_key_ids.join(', ') || 'none'})`,
    });
  }
  if (keys && keys.old_key_ids_in_use.length > 0) {
    warnings.push({ code: 'old_keys_in_use', message: `stored secrets are still encrypted with old keys ${keys.old_key_ids_in_use.join(', ')}` });
  }
  const redisConfigured = config.redisUrl !== undefined;
  if (redisConfigured && redis !== true) {
    warnings.push({ code: 'redis_unreachable', message: 'Redis does not answer: rate limits are per instance until it does' });
  }
  warnings.push(...backlogWarnings(deliveries, hour), ...incomplete(unavailable.filter((name) => name !== 'redis')));

  return {
    health: { ok: warnings.length === 0, warnings },
    version: VERSION,
    uptime_s: Math.floor(process.uptime()),
    generated_at: new Date().toISOString(),
    database: { kind: database.kind, reachable, latency_ms: latency, migrations },
    keyring: keys,
    redis: { configured: redisConfigured, reachable: redisConfigured ? redis === true : null },
    google_oauth: { configured: config.google !== null, connections },
    deliveries: deliveries && { ...deliveries, count_cap: COUNT_CAP },
    agents: agentCounts,
    last_hour: hour,
    audit_chain: chain,
  };
}

export interface OrganizationSignals {
  deliveries: (DeliverySignals & { count_cap: number }) | null;
  agents: AgentSignals | null;
  last_hour: LastHour | null;
  audit_chain: AuditChainSignal | null;
  /** The organization's Google connection (null inside when it has none); null when it was not read in time. */
  google: { connection: GoogleConnection | null } | null;
  warnings: Warning[];
}

/** The organization's own backlog, agents, failures and Google connection (the route describes the connection). */
export async function organizationSignals(
  database: Database,
  config: Config,
  organizationId: string,
  startedAt = performance.now(),
): Promise<OrganizationSignals> {
  const db = database.db;
  const unavailable: string[] = [];
  const probe = bounded(startedAt + config.readinessTimeoutMs, unavailable);
  const [deliveries, agentCounts, hour, chain, google] = await Promise.all([
    probe('deliveries', () => deliverySignals(db, organizationId)),
    probe('agents', () => agentSignals(db, organizationId, config.agentOfflineAfterS)),
    probe('last_hour', async () => lastHour(await recentFailures(db, organizationId, WINDOW_S))),
    probe('audit_chain', async () => chainSignal(await auditChainHead(db, organizationId))),
    probe('google_oauth', async () => ({ connection: await getGoogleConnection(db, organizationId) })),
  ]);
  const warnings = backlogWarnings(deliveries, hour);
  if (agentCounts && agentCounts.offline > 0) {
    warnings.push({ code: 'agents_offline', message: `${agentCounts.offline} agents have not been seen for ${config.agentOfflineAfterS} s` });
  }
  warnings.push(...incomplete(unavailable));
  return { deliveries: deliveries && { ...deliveries, count_cap: COUNT_CAP }, agents: agentCounts, last_hour: hour, audit_chain: chain, google, warnings };
}
