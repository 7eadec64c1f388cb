// Audit helpers for routes: who did it (from the authenticated principal) and an aggregator for
// authentication failures, so a flood of bad credentials writes a few rows, not one per attempt.
import { inArray } from 'drizzle-orm';
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { auditRow, recordAuditEvents, type AuditActor, type AuditInput, type NewAuditEvent } from '../db/audit-events.js';
import { FOREIGN_KEY_VIOLATION, sqlState } from '../db/errors.js';
import { organizations } from '../db/schema.js';

declare module 'fastify' {
  interface FastifyInstance {
    auditFailures: FailureAggregator;
  }
}

export function actorOf(request: FastifyRequest): AuditActor {
  const principal = request.principal;
  const base = { clientIp: request.ip, requestId: request.id };
  if (principal?.type === 'api_key') return { ...base, actorType: 'api_key', actorId: principal.keyId };
  if (principal?.type === 'agent') return { ...base, actorType: 'agent', actorId: principal.agentId };
  if (principal?.type === 'platform_admin') return { ...base, actorType: 'platform_admin', actorId: null };
  return { ...base, actorType: 'anonymous', actorId: null };
}

/** An audit row for `input`, attributed to the request's principal and, by default, its organization. */
export function auditEvent(request: FastifyRequest, input: AuditInput, organizationId?: string | null): NewAuditEvent {
  const principal = request.principal;
  const organization =
    organizationId !== undefined ? organizationId : principal && principal.type !== 'platform_admin' ? principal.organizationId : null;
  return auditRow(actorOf(request), organization, input);
}

export interface FailureInput {
  organizationId: string | null;
  action: string;
  clientIp: string;
  /** What identifies the attempted credential without revealing it (a key's public id). */
  credentialId: string | null;
  reason: string;
  requestId: string;
}

interface Bucket {
  event: NewAuditEvent;
  count: number;
  first: Date;
  last: Date;
}

export interface FailureAggregator {
  add(failure: FailureInput): void;
  flush(): Promise<void>;
}

/** Distinct (organization, action, IP, credential, reason) buckets kept between flushes. */
const MAX_BUCKETS = 1000;

export default fp<{ flushIntervalMs: number }>(
  async (app, { flushIntervalMs }) => {
    let buckets = new Map<string, Bucket>();
    let overflow: Bucket | undefined;

    const aggregator: FailureAggregator = {
      add(failure) {
        const now = new Date();
        const key = [failure.organizationId, failure.action, failure.clientIp, failure.credentialId, failure.reason].join('|');
        const bucket = buckets.get(key) ?? (buckets.size < MAX_BUCKETS ? undefined : (overflow ??= newBucket(failure, now, true)));
        if (bucket) {
          bucket.count += 1;
          bucket.last = now;
          return;
        }
        buckets.set(key, newBucket(failure, now, false));
      },
      async flush() {
        const pending = [...buckets.values(), ...(overflow ? [overflow] : [])];
        buckets = new Map();
        overflow = undefined;
        const events = pending.map((bucket) => ({
          ...bucket.event,
          occurredAt: bucket.last,
          count: bucket.count,
          details: { ...bucket.event.details, count: bucket.count, first_at: bucket.first.toISOString(), last_at: bucket.last.toISOString() },
        }));
        try {
          await recordAuditEvents(app.db, events);
        } catch (err) {
          // An organization deleted since its failures were counted takes them with it (its log is
          // gone); the others are written.
          if (sqlState(err) === FOREIGN_KEY_VIOLATION) {
            try {
              await recordAuditEvents(app.db, await ofExistingOrganizations(events));
              return;
            } catch (again) {
              err = again;
            }
          }
          app.log.error({ err, events: events.length }, 'could not write aggregated authentication failures to the audit log');
        }
      },
    };

    /** The events of the platform and of organizations that still exist. */
    const ofExistingOrganizations = async (events: NewAuditEvent[]) => {
      const named = [...new Set(events.flatMap((event) => (event.organizationId ? [event.organizationId] : [])))];
      const existing = new Set(
        named.length === 0 ? [] : (await app.db.select({ id: organizations.id }).from(organizations).where(inArray(organizations.id, named))).map((row) => row.id),
      );
      return events.filter((event) => !event.organizationId || existing.has(event.organizationId));
    };

    const timer = setInterval(() => void aggregator.flush(), flushIntervalMs);
    timer.unref();
    app.decorate('auditFailures', aggregator);
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await aggregator.flush();
    });
  },
  { name: 'audit', dependencies: ['database'] },
);

function newBucket(failure: FailureInput, now: Date, isOverflow: boolean): Bucket {
  return {
    count: isOverflow ? 0 : 1,
    first: now,
    last: now,
    event: {
      organizationId: isOverflow ? null : failure.organizationId,
      actorType: 'anonymous',
      actorId: isOverflow ? null : failure.credentialId,
      clientIp: isOverflow ? null : failure.clientIp,
      action: failure.action,
      outcome: 'failure',
      requestId: isOverflow ? null : failure.requestId,
      details: isOverflow ? { reason: 'overflow', note: 'more distinct failure sources than could be tracked separately' } : { reason: failure.reason },
    },
  };
}
