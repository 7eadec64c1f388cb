// OAuth state (single-use, hashed) and the organization's Google connection (tokens encrypted by
// the caller with the keyring; this module only moves ciphertext).
import { and, eq, getTableColumns, gt, isNull, lt, or, sql, type Column } from 'drizzle-orm';
import type { DbOrTx } from './client.js';
import { apiKeys, googleConnections, oauthStates } from './schema.js';

export type OAuthState = typeof oauthStates.$inferSelect;
export type GoogleConnection = typeof googleConnections.$inferSelect;

export const refreshTokenAad = (organizationId: string, connectionId: string) => `google_connections:${organizationId}:${connectionId}:refresh_token`;
export const accessTokenAad = (organizationId: string, connectionId: string) => `google_connections:${organizationId}:${connectionId}:access_token`;
export const verifierAad = (stateHash: string) => `oauth_states:${stateHash}:code_verifier`;

export async function createOAuthState(
  db: DbOrTx,
  organizationId: string,
  input: { stateHash: string; apiKeyId: string; codeVerifierCiphertext: string; ttlSeconds: number },
): Promise<OAuthState> {
  const rows = await db
    .insert(oauthStates)
    .values({
      organizationId,
      stateHash: input.stateHash,
      apiKeyId: input.apiKeyId,
      codeVerifierCiphertext: input.codeVerifierCiphertext,
      expiresAt: sql`now() + make_interval(secs => ${input.ttlSeconds})`,
    })
    .returning();
  return rows[0]!;
}

/**
 * Whether the API key `keyId` (a column or a value) may still act for a Google connection of
 * `organizationId`: it belongs to that organization, is admin, and is neither revoked nor expired.
 * One condition for both checks below, so they cannot drift apart.
 */
const keyMayConnect = (keyId: Column | string, organizationId: Column | string) =>
  and(
    eq(apiKeys.id, keyId),
    eq(apiKeys.organizationId, organizationId),
    eq(apiKeys.role, 'admin'),
    isNull(apiKeys.revokedAt),
    or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, sql`now()`)),
  );

/**
 * Deletes and returns the state in one statement: exactly one caller, on any instance, gets it.
 * `keyUsable` says whether the admin key that started it may still act for its organization (not
 * revoked, not expired, admin): a state outliving its key's authority must not connect an account.
 */
export async function consumeOAuthState(db: DbOrTx, stateHash: string): Promise<(OAuthState & { keyUsable: boolean }) | null> {
  const rows = await db
    .delete(oauthStates)
    .where(eq(oauthStates.stateHash, stateHash))
    .returning({
      ...getTableColumns(oauthStates),
      keyUsable: sql<boolean>`exists (select 1 from ${apiKeys} where ${keyMayConnect(oauthStates.apiKeyId, oauthStates.organizationId)})`,
    });
  return rows[0] ?? null;
}

/**
 * Whether the key may still act (keyMayConnect, as consumeOAuthState checks it), locking its row until the
 * transaction ends: a revocation made meanwhile (the exchange with Google takes a while) was either
 * seen, or waits for the connection to be saved, like one made a moment after it.
 */
export async function lockUsableKey(tx: DbOrTx, organizationId: string, apiKeyId: string): Promise<boolean> {
  const rows = await tx
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(keyMayConnect(apiKeyId, organizationId))
    .for('share');
  return rows.length > 0;
}

/** Ends the pending connections a key started (it was revoked). */
export async function deleteOAuthStatesOfKey(db: DbOrTx, organizationId: string, apiKeyId: string): Promise<void> {
  await db.delete(oauthStates).where(and(eq(oauthStates.organizationId, organizationId), eq(oauthStates.apiKeyId, apiKeyId)));
}

export async function pruneOAuthStates(db: DbOrTx): Promise<void> {
  await db.delete(oauthStates).where(lt(oauthStates.expiresAt, sql`now()`));
}

export async function getGoogleConnection(db: DbOrTx, organizationId: string, options: { forUpdate?: boolean } = {}): Promise<GoogleConnection | null> {
  const query = db.select().from(googleConnections).where(eq(googleConnections.organizationId, organizationId)).limit(1);
  const rows = options.forUpdate ? await query.for('update') : await query;
  return rows[0] ?? null;
}

export interface ConnectionTokens {
  accountEmail: string | null;
  refreshTokenCiphertext: string;
  accessTokenCiphertext: string | null;
  accessTokenExpiresAt: Date | null;
  scopes: string[];
}

/** Inserts or replaces the organization's connection (keeping its id), status connected. */
export async function saveGoogleConnection(db: DbOrTx, organizationId: string, id: string, tokens: ConnectionTokens): Promise<GoogleConnection> {
  const values = { ...tokens, status: 'connected' as const, lastError: null, lastRefreshAt: sql`now()`, updatedAt: sql`now()` };
  const rows = await db
    .insert(googleConnections)
    .values({ id, organizationId, ...values })
    .onConflictDoUpdate({ target: googleConnections.organizationId, set: values })
    .returning();
  return rows[0]!;
}

export async function recordRefresh(
  db: DbOrTx,
  organizationId: string,
  outcome:
    | { ok: true; accessTokenCiphertext: string; accessTokenExpiresAt: Date; scopes?: string[] | undefined }
    | { ok: false; status: 'expired' | 'connected'; error: string },
): Promise<void> {
  const set = outcome.ok
    ? {
        accessTokenCiphertext: outcome.accessTokenCiphertext,
        accessTokenExpiresAt: outcome.accessTokenExpiresAt,
        ...(outcome.scopes ? { scopes: outcome.scopes } : {}),
        status: 'connected' as const,
        lastError: null,
        lastRefreshAt: sql`now()`,
        updatedAt: sql`now()`,
      }
    : { status: outcome.status, lastError: outcome.error, lastRefreshAt: sql`now()`, updatedAt: sql`now()` };
  await db.update(googleConnections).set(set).where(eq(googleConnections.organizationId, organizationId));
}

export async function deleteGoogleConnection(db: DbOrTx, organizationId: string): Promise<GoogleConnection | null> {
  const rows = await db.delete(googleConnections).where(and(eq(googleConnections.organizationId, organizationId))).returning();
  return rows[0] ?? null;
}
