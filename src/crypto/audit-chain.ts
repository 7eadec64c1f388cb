// The audit log's hash chain: each event's hash covers its chain, sequence number, its
// predecessor's hash and every stored field, so an edited, deleted or reordered row breaks the
// chain. Pure: the database layer supplies the fields, this file only encodes and hashes them.
import { createHash } from 'node:crypto';

/** The prev_hash of the first event of every chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** Bumped if the encoding below ever changes; part of every hash. */
const ENCODING_VERSION = 'switchboard.audit.v1';

export interface ChainedFields {
  chain: string;
  seq: number;
  prevHash: string;
  id: string;
  organizationId: string | null;
  occurredAt: Date;
  actorType: string;
  actorId: string | null;
  clientIp: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: string;
  requestId: string | null;
  count: number;
  details: Record<string, unknown>;
}

/** SHA-256 (hex) over a canonical encoding of the event and its place in the chain. */
export function auditEventHash(fields: ChainedFields): string {
  const encoded = canonicalJson([
    ENCODING_VERSION,
    fields.chain,
    fields.seq,
    fields.prevHash,
    fields.id,
    fields.organizationId,
    fields.occurredAt.toISOString(),
    fields.actorType,
    fields.actorId,
    fields.clientIp,
    fields.action,
    fields.targetType,
    fields.targetId,
    fields.outcome,
    fields.requestId,
    fields.count,
    fields.details,
  ]);
  return createHash('sha256').update(encoded, 'utf8').digest('hex');
}

/**
 * JSON with object keys sorted by code unit, so the same value always encodes the same way —
 * whatever order the keys were written in, and after a round trip through jsonb (which reorders
 * them). Follows JSON.stringify otherwise: toJSON is honoured, undefined members are left out.
 */
function canonicalJson(value: unknown): string {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return canonicalJson((value as { toJSON(): unknown }).toJSON());
  }
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined || typeof item === 'function' ? 'null' : canonicalJson(item))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.keys(value)
      .sort()
      .flatMap((key) => {
        const member = (value as Record<string, unknown>)[key];
        return member === undefined || typeof member === 'function' ? [] : [`${JSON.stringify(key)}:${canonicalJson(member)}`];
      });
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
