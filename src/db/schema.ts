// Table definitions. drizzle-kit reads this file to generate the SQL migrations in drizzle/.
// Every tenant-owned table has organization_id (FK, cascade on delete) first in its indexes.
import { sql } from 'drizzle-orm';
import { bigint, boolean, customType, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { uuidv7 } from './ids.js';

/** Raw bytes; the two drivers return Buffer and Uint8Array, so normalize to Buffer. */
const bytea = customType<{ data: Buffer; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => Buffer.from(value),
  toDriver: (value) => value,
});

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
    // The hash chain (see db/audit-chain.ts): position in the organization's chain (or the platform
    // chain when organization_id is null), the previous event's hash and this event's hash.
    // Null only on rows written by something other than Switchboard (verify reports them).
    seq: bigint('seq', { mode: 'number' }),
    prevHash: text('prev_hash'),
    hash: text('hash'),
  },
  (t) => [
    index('audit_events_organization_id_id_idx').on(t.organizationId, t.id),
    index('audit_events_organization_id_action_id_idx').on(t.organizationId, t.action, t.id),
    // A lost race between two appenders is an error, not a fork. Nulls are distinct, so the
    // platform chain (organization_id null) needs an index of its own.
    uniqueIndex('audit_events_organization_id_seq_idx').on(t.organizationId, t.seq),
    uniqueIndex('audit_events_platform_seq_idx').on(t.seq).where(sql`${t.organizationId} is null`),
    index('audit_events_unchained_id_idx').on(t.id).where(sql`${t.seq} is null`),
    // Platform-wide "failures of these actions in the last hour" (status endpoints) without a scan.
    index('audit_events_action_occurred_at_idx').on(t.action, t.occurredAt),
  ],
);

/**
 * The head of each audit chain: 'platform' or an organization id. Its row lock serializes appends
 * to the chain across instances; it also lets verify notice a deleted tail.
 */
export const auditChainHeads = pgTable('audit_chain_heads', {
  chain: text('chain').primaryKey(),
  organizationId: uuid('organization_id').references(() => organizations.id, { onDelete: 'cascade' }),
  seq: bigint('seq', { mode: 'number' }).notNull().default(0),
  hash: text('hash').notNull(),
  eventId: uuid('event_id'),
  occurredAt: at('occurred_at'),
  updatedAt: at('updated_at').notNull().defaultNow(),
});

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

export const webhooks = pgTable(
  'webhooks',
  {
    id: id(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    // The agent deliveries are routed to; unrouted deliveries wait until one is set.
    agentId: uuid('agent_id').references(() => agents.id, { onDelete: 'set null' }),
    name: text('name').notNull(),
    description: text('description'),
    enabled: boolean('enabled').notNull().default(true),
    signatureScheme: text('signature_scheme', { enum: ['auto', 'none'] }).notNull().default('auto'),
    // Encrypted with the keyring; associated data binds each to this row and field.
    secretCiphertext: text('secret_ciphertext').notNull(),
    previousSecretCiphertext: text('previous_secret_ciphertext'),
    previousSecretExpiresAt: at('previous_secret_expires_at'),
    createdAt: at('created_at').notNull().defaultNow(),
    updatedAt: at('updated_at').notNull().defaultNow(),
  },
  (t) => [index('webhooks_organization_id_id_idx').on(t.organizationId, t.id), index('webhooks_organization_id_agent_id_idx').on(t.organizationId, t.agentId)],
);

export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: id(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    webhookId: uuid('webhook_id')
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    // The sender's id for this delivery (webhook-id, X-GitHub-Delivery or Idempotency-Key).
    deliveryKey: text('delivery_key'),
    contentType: text('content_type'),
    body: bytea('body').notNull(),
    size: integer('size').notNull(),
    bodySha256: text('body_sha256').notNull(),
    headers: jsonb('headers').$type<Record<string, string>>().notNull(),
    sourceIp: text('source_ip'),
    receivedAt: at('received_at').notNull().defaultNow(),
    status: text('status', { enum: ['pending', 'leased', 'done', 'dead'] }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    availableAt: at('available_at').notNull().defaultNow(),
    leaseExpiresAt: at('lease_expires_at'),
    // The agent that leased it last (kept after the lease ends: a late ack is told 409, not 404).
    leasedByAgentId: uuid('leased_by_agent_id'),
    lastError: text('last_error'),
    completedAt: at('completed_at'),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_webhook_id_delivery_key_idx').on(t.webhookId, t.deliveryKey).where(sql`${t.deliveryKey} is not null`),
    index('webhook_deliveries_organization_id_webhook_id_id_idx').on(t.organizationId, t.webhookId, t.id),
    index('webhook_deliveries_organization_id_status_available_at_idx').on(t.organizationId, t.status, t.availableAt),
    // Leasing walks each of the agent's webhooks' pending deliveries oldest first, passing neither
    // done ones nor those of other webhooks (an organization's backlog for other agents).
    index('webhook_deliveries_webhook_id_id_pending_idx').on(t.webhookId, t.id).where(sql`${t.status} = 'pending'`),
    index('webhook_deliveries_received_at_idx').on(t.receivedAt),
    // Platform-wide backlog counts and the oldest pending delivery (status endpoints).
    index('webhook_deliveries_status_available_at_idx').on(t.status, t.availableAt),
    // Lease expiry, run before every lease: only leases already past their expiry. Every move out
    // of 'leased' clears lease_expires_at, so this holds the leased rows; entries of deliveries
    // acked since keep a future expiry until vacuum removes them, and an expiry scan never reaches
    // them. Through the status index it walked every delivery leased since the last vacuum.
    index('webhook_deliveries_lease_expiry_idx').on(t.leaseExpiresAt, t.organizationId).where(sql`${t.leaseExpiresAt} is not null`),
  ],
);

/** Pending OAuth authorizations: consumed exactly once by the callback, on any instance. */
export const oauthStates = pgTable(
  'oauth_states',
  {
    id: id(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    stateHash: text('state_hash').notNull(),
    // The admin key that started the connection: revoking it (or deleting it) ends its pending states.
    apiKeyId: uuid('api_key_id')
      .notNull()
      .references(() => apiKeys.id, { onDelete: 'cascade' }),
    codeVerifierCiphertext: text('code_verifier_ciphertext').notNull(),
    expiresAt: at('expires_at').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('oauth_states_state_hash_idx').on(t.stateHash),
    index('oauth_states_organization_id_idx').on(t.organizationId),
    index('oauth_states_api_key_id_idx').on(t.apiKeyId),
  ],
);

/** One Google connection per organization; tokens encrypted with the keyring. */
export const googleConnections = pgTable(
  'google_connections',
  {
    id: id(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    accountEmail: text('account_email'),
    refreshTokenCiphertext: text('refresh_token_ciphertext').notNull(),
    accessTokenCiphertext: text('access_token_ciphertext'),
    accessTokenExpiresAt: at('access_token_expires_at'),
    scopes: jsonb('scopes').$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    status: text('status', { enum: ['connected', 'expired', 'error'] }).notNull().default('connected'),
    lastRefreshAt: at('last_refresh_at'),
    lastError: text('last_error'),
    createdAt: at('created_at').notNull().defaultNow(),
    updatedAt: at('updated_at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('google_connections_organization_id_idx').on(t.organizationId)],
);

/** A known plaintext encrypted under each key that wrote data here (see db/canaries.ts). */
export const encryptionCanaries = pgTable('encryption_canaries', {
  keyId: text('key_id').primaryKey(),
  ciphertext: text('ciphertext').notNull(),
  createdAt: at('created_at').notNull().defaultNow(),
});
