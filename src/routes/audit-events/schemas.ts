import { z } from 'zod';
import type { AuditEvent } from '../../db/audit-events.js';
import { InputTimestamp, iso, PageQueryShape, Timestamp } from '../common.js';

export const ACTOR_TYPES = ['platform_admin', 'api_key', 'agent', 'system', 'anonymous'] as const;

export const AuditEventSchema = z.object({
  id: z.uuid(),
  occurred_at: Timestamp,
  actor_type: z.enum(ACTOR_TYPES),
  actor_id: z.string().nullable(),
  client_ip: z.string().nullable(),
  action: z.string(),
  target_type: z.string().nullable(),
  target_id: z.string().nullable(),
  outcome: z.enum(['success', 'failure']),
  request_id: z.string().nullable(),
  count: z.number().int().describe('Aggregated failures: how many attempts this row stands for'),
  details: z.record(z.string(), z.unknown()),
  seq: z.number().int().nullable().describe("Position in the organization's hash chain (1, 2, …)"),
  prev_hash: z.string().nullable().describe('SHA-256 (hex) of the previous event in the chain'),
  hash: z.string().nullable().describe('SHA-256 (hex) over this event, its seq and prev_hash'),
});

export const ListAuditEventsQuery = z
  .strictObject({
    ...PageQueryShape,
    action: z.string().max(100).regex(/^[a-z_]+(\.[a-z_]+)*$/, { error: 'must look like resource.verb, e.g. api_key.revoked' }).optional(),
    actor_type: z.enum(ACTOR_TYPES).optional(),
    actor_id: z.string().min(1).max(100).optional().describe('Only events by this actor, e.g. an API key id (with actor_type=api_key) or an agent id'),
    since: InputTimestamp.optional(),
    until: InputTimestamp.optional(),
  })
  .refine((q) => !q.since || !q.until || Date.parse(q.since) < Date.parse(q.until), { error: 'since must be before until', path: ['since'] });

export const toAuditEventJson = (event: AuditEvent) => ({
  id: event.id,
  occurred_at: iso(event.occurredAt),
  actor_type: event.actorType,
  actor_id: event.actorId,
  client_ip: event.clientIp,
  action: event.action,
  target_type: event.targetType,
  target_id: event.targetId,
  outcome: event.outcome,
  request_id: event.requestId,
  count: event.count,
  details: event.details,
  seq: event.seq,
  prev_hash: event.prevHash,
  hash: event.hash,
});
