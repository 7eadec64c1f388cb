// Organization API keys. Only hashes are stored; lookup is by the public id in the key.
import { and, desc, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { DbOrTx } from './client.js';
import { afterCursor, toPage, type Page } from './pagination.js';
import { apiKeys, organizations } from './schema.js';

export const API_KEY_PREFIX = 'sbk';

export type ApiKey = typeof apiKeys.$inferSelect;
export type ApiKeyRole = ApiKey['role'];

export interface NewApiKey {
  publicId: string;
  secretHash: string;
  name: string;
  role: ApiKeyRole;
  expiresAt?: Date | null | undefined;
  createdByKeyId?: string | null | undefined;
}

export async function createApiKey(db: DbOrTx, organizationId: string, input: NewApiKey): Promise<ApiKey> {
  const rows = await db
    .insert(apiKeys)
    .values({ ...input, organizationId })
    .returning();
  return rows[0]!;
}

export async function listApiKeys(db: DbOrTx, organizationId: string, page: Page) {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.organizationId, organizationId), afterCursor(apiKeys.id, page)))
    .orderBy(desc(apiKeys.id))
    .limit(page.limit + 1);
  return toPage(rows, page);
}

export async function getApiKey(db: DbOrTx, organizationId: string, id: string): Promise<ApiKey | null> {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.organizationId, organizationId), eq(apiKeys.id, id)))
    .limit(1);
  return rows[0] ?? null;
}

/** Revokes a key; revoking an already revoked key keeps the first revocation time. */
export async function revokeApiKey(db: DbOrTx, organizationId: string, id: string): Promise<ApiKey | null> {
  const rows = await db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
    .where(and(eq(apiKeys.organizationId, organizationId), eq(apiKeys.id, id)))
    .returning();
  return rows[0] ?? null;
}

export interface KeyWithOrganization {
  key: ApiKey;
  organization: { id: string; name: string; slug: string };
}

/** The one indexed query behind every API-key authentication. Not tenant-scoped: it finds the tenant. */
export async function findApiKeyByPublicId(db: DbOrTx, publicId: string): Promise<KeyWithOrganization | null> {
  const rows = await db
    .select({ key: apiKeys, organization: { id: organizations.id, name: organizations.name, slug: organizations.slug } })
    .from(apiKeys)
    .innerJoin(organizations, eq(organizations.id, apiKeys.organizationId))
    .where(eq(apiKeys.publicId, publicId))
    .limit(1);
  return rows[0] ?? null;
}

/** Writes last_used_at unless it was written within the last minute (by any instance). */
export async function touchApiKey(db: DbOrTx, id: string): Promise<void> {
  await db
    .update(apiKeys)
    .set({ lastUsedAt: sql`now()` })
    .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, sql`now() - interval '1 minute'`))));
}
