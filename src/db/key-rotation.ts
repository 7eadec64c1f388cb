// Re-encrypts every stored secret that is not under the current key, in small batches, each row
// locked while it is rewritten — safe while servers keep reading and writing.
import { and, asc, eq, gt, not, like, or, isNotNull, sql } from 'drizzle-orm';
import { KeyringError, type Keyring } from '../crypto/keyring.js';
import type { Db } from './client.js';
import { accessTokenAad, refreshTokenAad, verifierAad } from './oauth.js';
import { googleConnections, oauthStates, webhooks } from './schema.js';
import { secretAad } from './webhooks.js';

export interface RotationReport {
  webhooks: number;
  google_connections: number;
  oauth_states: number;
  /** Rows whose secrets the keyring could not decrypt: left as they are, the others rewritten. */
  unreadable: UnreadableRow[];
}

export interface UnreadableRow {
  table: 'webhooks' | 'google_connections' | 'oauth_states';
  id: string;
  organization_id: string;
  /** Why it did not decrypt (a KeyringError's message: never key material). */
  reason: string;
}

const BATCH = 100;

export async function reencryptSecrets(db: Db, keyring: Keyring): Promise<RotationReport> {
  const current = `v1.${keyring.currentKeyId}.%`;
  const stale = (column: Parameters<typeof like>[0]) => and(isNotNull(column), not(like(column, current)));
  const report: RotationReport = { webhooks: 0, google_connections: 0, oauth_states: 0, unreadable: [] };
  const again = (text: string | null, aad: string) => (text === null || keyring.keyIdOf(text) === keyring.currentKeyId ? text : keyring.encrypt(keyring.decrypt(text, aad), aad));
  /** Runs one row's rewrite; a secret that does not decrypt is reported and its row skipped. */
  const rewrite = async (row: Omit<UnreadableRow, 'reason'>, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      if (!(error instanceof KeyringError)) throw error;
      report.unreadable.push({ ...row, reason: error.message });
    }
  };

  for (let after = '00000000-0000-0000-0000-000000000000'; ; ) {
    const ids = await db
      .select({ id: webhooks.id, organizationId: webhooks.organizationId })
      .from(webhooks)
      .where(and(gt(webhooks.id, after), or(stale(webhooks.secretCiphertext), stale(webhooks.previousSecretCiphertext))))
      .orderBy(asc(webhooks.id))
      .limit(BATCH);
    for (const { id, organizationId } of ids) {
      await rewrite({ table: 'webhooks', id, organization_id: organizationId }, () =>
        db.transaction(async (tx) => {
          const [row] = await tx.select().from(webhooks).where(eq(webhooks.id, id)).for('update');
          if (!row) return;
          const aad = secretAad(row.organizationId, row.id);
          await tx
            .update(webhooks)
            .set({ secretCiphertext: again(row.secretCiphertext, aad)!, previousSecretCiphertext: again(row.previousSecretCiphertext, aad) })
            .where(eq(webhooks.id, id));
          report.webhooks += 1;
        }),
      );
    }
    if (ids.length < BATCH) break;
    after = ids.at(-1)!.id;
  }

  for (let after = '00000000-0000-0000-0000-000000000000'; ; ) {
    const ids = await db
      .select({ id: googleConnections.id, organizationId: googleConnections.organizationId })
      .from(googleConnections)
      .where(and(gt(googleConnections.id, after), or(stale(googleConnections.refreshTokenCiphertext), stale(googleConnections.accessTokenCiphertext))))
      .orderBy(asc(googleConnections.id))
      .limit(BATCH);
    for (const { id, organizationId } of ids) {
      await rewrite({ table: 'google_connections', id, organization_id: organizationId }, () =>
        db.transaction(async (tx) => {
          const [row] = await tx.select().from(googleConnections).where(eq(googleConnections.id, id)).for('update');
          if (!row) return;
          await tx
            .update(googleConnections)
            .set({
              refreshTokenCiphertext: again(row.refreshTokenCiphertext, refreshTokenAad(row.organizationId, row.id))!,
              accessTokenCiphertext: again(row.accessTokenCiphertext, accessTokenAad(row.organizationId, row.id)),
            })
            .where(eq(googleConnections.id, id));
          report.google_connections += 1;
        }),
      );
    }
    if (ids.length < BATCH) break;
    after = ids.at(-1)!.id;
  }

  // Pending OAuth states live ten minutes; rewrite the few there are.
  const states = await db.select().from(oauthStates).where(stale(oauthStates.codeVerifierCiphertext));
  for (const state of states) {
    await rewrite({ table: 'oauth_states', id: state.id, organization_id: state.organizationId }, async () => {
      await db
        .update(oauthStates)
        .set({ codeVerifierCiphertext: again(state.codeVerifierCiphertext, verifierAad(state.stateHash))! })
        .where(and(eq(oauthStates.id, state.id), eq(oauthStates.codeVerifierCiphertext, state.codeVerifierCiphertext)));
      report.oauth_states += 1;
    });
  }
  return report;
}

/** How many stored ciphertexts each key id still protects (for status and doctor). */
export async function ciphertextsByKey(db: Db): Promise<Record<string, number>> {
  const result = await db.execute(sql`
    select split_part(c, '.', 2) as key_id, count(*)::int as n from (
      select secret_ciphertext as c from webhooks
      union all select previous_secret_ciphertext from webhooks where previous_secret_ciphertext is not null
      union all select refresh_token_ciphertext from google_connections
      union all select access_token_ciphertext from google_connections where access_token_ciphertext is not null
      union all select code_verifier_ciphertext from oauth_states where expires_at > now()
    ) all_ciphertexts group by 1`);
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { key_id: string; n: number }[];
  return Object.fromEntries(rows.map((row) => [row.key_id, Number(row.n)]));
}
