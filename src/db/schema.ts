// Table definitions. drizzle-kit reads this file to generate the SQL migrations in drizzle/.
// Every tenant-owned table has organization_id (FK, cascade on delete) first in its indexes.
import { sql } from 'drizzle-orm';
import { bigint, boolean, index, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { uuidv7 } from './ids.js';

const id = () => uuid('id').primaryKey().$defaultFn(uuidv7);
const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const organizations = pgTable(
  'organizations',
  {
    id: id(),
    name: text('name').notNull(),
    slug: text('slug').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('organizations_slug_idx').on(t.slug)],
);

export const apiKeys = pgTable(
  'api_keys',
  {
    id: id(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    publicId: text('public_id').notNull(),
    secretHash: text('secret_hash').notNull(),
    name: text('name').notNull(),
    role: text('role', { enum: ['admin', 'read_only'] }).notNull(),
    createdByKeyId: uuid('created_by_key_id'),
    createdAt: at('created_at').notNull().defaultNow(),
    expiresAt: at('expires_at'),
    revokedAt: at('revoked_at'),
    lastUsedAt: at('last_used_at'),
  },
  (t) => [
    uniqueIndex('api_keys_public_id_idx').on(t.publicId),
    index('api_keys_organization_id_id_idx').on(t.organizationId, t.id),
  ],
);

export const auditEvents = pgTable(
  'audit_events',
  {
    id: id(),
    // Null for platform events (organization lifecycle, failures that name no organization).
    organizationId: uuid('organization_id').references(() => organizations.id, { onDelete: 'cascade' }),
    occurredAt: at('occurred_at').notNull().defaultNow(),
    actorType: text('actor_type', { enum: ['platform_admin', 'api_key', 'agent', 'system', 'anonymous'] }).notNull(),
    actorId: text('actor_id'),
    clientIp: text('client_ip'),
    action: text('action').notNull(),
    targetType: text('target_type'),
    targetId: text('target_id'),
    outcome: text('outcome', { enum: ['success', 'failure'] }).notNull(),
    requestId: text('request_id'),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    // Failures are aggregated: one row stands for `count` attempts.
    count: bigint('count', { mode: 'number' }).notNull().default(1),
  },
  (t) => [
    index('audit_events_organization_id_id_idx').on(t.organizationId, t.id),
    index('audit_events_organization_id_action_id_idx').on(t.organizationId, t.action, t.id),
  ],
);

export const agents = pgTable(
  'agents',
  {
    id: id(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description'),
    metadata: jsonb('metadata').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    disabled: boolean('disabled').notNull().default(false),
    lastSeenAt: at('last_seen_at'),
    statusDetail: text('status_detail'),
    version: text('version'),
    createdAt: at('created_at').notNull().defaultNow(),
    updatedAt: at('updated_at').notNull().defaultNow(),
  },
  (t) => [index('agents_organization_id_id_idx').on(t.organizationId, t.id)],
);

/** An agent's tokens: normally one; during a rotation grace period, also the previous one. */
export const agentTokens = pgTable(
  'agent_tokens',
  {
    id: id(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    agentId: uuid('agent_id')
      .notNull()
      .references(() => agents.id, { onDelete: 'cascade' }),
    publicId: text('public_id').notNull(),
    secretHash: text('secret_hash').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    // Null while current; set when a rotation with a grace period retires it.
    expiresAt: at('expires_at'),
  },
  (t) => [
    uniqueIndex('agent_tokens_public_id_idx').on(t.publicId),
    index('agent_tokens_organization_id_agent_id_idx').on(t.organizationId, t.agentId),
  ],
);
