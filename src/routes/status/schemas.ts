import { z } from 'zod';
import { FAILURE_ACTIONS } from '../../db/status.js';
import { OAuthStatusResponse } from '../oauth/schemas.js';
import { Timestamp } from '../common.js';

const Count = z.number().int().min(0);

export const HealthSchema = z.object({
  ok: z.boolean().describe('true when there is no warning'),
  warnings: z.array(z.object({ code: z.string(), message: z.string() })),
});

export const DeliveriesSchema = z
  .object({
    pending: Count,
    leased: Count,
    dead: Count,
    oldest_pending_age_s: Count.nullable().describe('seconds the oldest due pending delivery has waited; null when none'),
    count_cap: Count.describe('counts stop at this value'),
  })
  .nullable();

export const AgentsSchema = z.object({ online: Count, offline: Count, never_seen: Count, disabled: Count }).nullable();

export const LastHourSchema = z
  .object({
    window_s: Count,
    auth_failures: Count,
    webhook_signature_failures: Count,
    rate_limit_rejections: Count,
    oauth_refresh_failures: Count,
    by_action: z.record(z.enum(FAILURE_ACTIONS), Count),
  })
  .nullable();

const AuditChainSchema = z
  .object({
    seq: Count.describe('Events in the chain (0 before the first)'),
    hash: z.string().describe('Hash of the last event; keep copies elsewhere to detect a rewritten log'),
    event_id: z.string().nullable(),
    occurred_at: Timestamp.nullable(),
  })
  .nullable();

export const PlatformStatusResponse = z.object({
  health: HealthSchema,
  version: z.string(),
  uptime_s: Count,
  generated_at: Timestamp,
  database: z.object({
    kind: z.enum(['postgres', 'embedded']),
    reachable: z.boolean(),
    latency_ms: z.number().nullable(),
    migrations: z.object({ applied: Count, pending: Count }).nullable(),
  }),
  keyring: z
    .object({
      current_key_id: z.string(),
      configured_key_ids: z.array(z.string()),
      old_key_ids_in_use: z.array(z.string()),
      ciphertexts_by_key: z.record(z.string(), Count),
      canary_ok: z.boolean(),
      unknown_key_ids: z.array(z.string()),
      failing_key_ids: z.array(z.string()),
    })
    .nullable(),
  redis: z.object({ configured: z.boolean(), reachable: z.boolean().nullable() }),
  google_oauth: z.object({
    configured: z.boolean(),
    connections: z.object({ connected: Count, expired: Count, error: Count }).nullable(),
  }),
  deliveries: DeliveriesSchema,
  agents: AgentsSchema,
  last_hour: LastHourSchema,
  audit_chain: AuditChainSchema.describe('The head of the platform audit chain (organization events have one chain each)'),
});

export const OrganizationStatusResponse = z.object({
  health: HealthSchema,
  organization_id: z.uuid(),
  generated_at: Timestamp,
  deliveries: DeliveriesSchema,
  agents: AgentsSchema,
  google_oauth: OAuthStatusResponse.shape.google.nullable().describe('null when the connection was not read within READINESS_TIMEOUT_MS (a status_incomplete warning says so)'),
  last_hour: LastHourSchema,
  audit_chain: AuditChainSchema.describe("The head of this organization's audit chain"),
});
