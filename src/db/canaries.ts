// One known plaintext per encryption key, so readiness and operators can tell "the configured
// keys cannot decrypt this database" (restored with another key, key lost) from "no secrets yet".
import { inArray, not } from 'drizzle-orm';
import type { Keyring } from '../crypto/keyring.js';
import type { DbOrTx } from './client.js';
import { encryptionCanaries } from './schema.js';

const PLAINTEXT = 'switchboard-keyring-canary';
const AAD = 'encryption_canaries';

/** Writes the current key's canary if it has none yet. */
export async function ensureCanary(db: DbOrTx, keyring: Keyring): Promise<void> {
  await db
    .insert(encryptionCanaries)
    .values({ keyId: keyring.currentKeyId, ciphertext: keyring.encrypt(PLAINTEXT, AAD) })
    .onConflictDoNothing({ target: encryptionCanaries.keyId });
}

export interface CanaryReport {
  ok: boolean;
  current_key_id: string;
  /** Keys that wrote data here but are not configured (TOKEN_ENCRYPTION_KEY / _OLD_KEYS). */
  unknown_key_ids: string[];
  /** Configured keys whose canary does not decrypt. */
  failing_key_ids: string[];
}

export async function checkCanaries(db: DbOrTx, keyring: Keyring): Promise<CanaryReport> {
  const rows = await db.select().from(encryptionCanaries);
  const unknown: string[] = [];
  const failing: string[] = [];
  for (const row of rows) {
    if (!keyring.keyIds.includes(row.keyId)) {
      unknown.push(row.keyId);
      continue;
    }
    try {
      if (keyring.decrypt(row.ciphertext, AAD) !== PLAINTEXT) failing.push(row.keyId);
    } catch {
      failing.push(row.keyId);
    }
  }
  return { ok: unknown.length === 0 && failing.length === 0, current_key_id: keyring.currentKeyId, unknown_key_ids: unknown, failing_key_ids: failing };
}

/** After a completed re-encryption, only the current key's canary stays. */
export async function retireCanaries(db: DbOrTx, keyring: Keyring): Promise<void> {
  await db.delete(encryptionCanaries).where(not(inArray(encryptionCanaries.keyId, [keyring.currentKeyId])));
  await ensureCanary(db, keyring);
}

