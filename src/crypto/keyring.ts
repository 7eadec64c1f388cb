// Encryption at rest for secrets that must be recoverable (webhook signing secrets, OAuth
// tokens): AES-256-GCM with a random 96-bit IV, the key id inside every ciphertext, and the
// row's identity as associated data, so a ciphertext copied to another row or field fails.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class KeyringError extends Error {
  override name = 'KeyringError';
}

export interface Keyring {
  /** Id of the key new ciphertexts are written with. */
  readonly currentKeyId: string;
  readonly keyIds: readonly string[];
  encrypt(plaintext: string, associatedData: string): string;
  decrypt(ciphertext: string, associatedData: string): string;
  /** The key id a ciphertext was written with (without decrypting it). */
  keyIdOf(ciphertext: string): string | null;
}

/** A 32-byte key from base64 or base64url text; throws on anything else. */
export function parseKey(text: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64url');
  if (key.length !== 32 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(text.trim())) {
    throw new KeyringError('must be 32 random bytes, base64 encoded (openssl rand -base64 32)');
  }
  return key;
}

/** Public identifier of a key: the first 8 hex characters of its SHA-256. */
export const keyId = (key: Buffer): string => createHash('sha256').update(key).digest('hex').slice(0, 8);

export function generateKey(): string {
  return randomBytes(32).toString('base64url');
}

export function createKeyring(current: Buffer, old: Buffer[] = []): Keyring {
  const keys = new Map<string, Buffer>();
  const currentKeyId = keyId(current);
  keys.set(currentKeyId, current);
  for (const key of old) keys.set(keyId(key), key);

  return {
    currentKeyId,
    keyIds: [...keys.keys()],
    encrypt(plaintext, associatedData) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current, iv);
      cipher.setAAD(Buffer.from(associatedData, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${VERSION}.${currentKeyId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
    },
    decrypt(ciphertext, associatedData) {
      const [version, kid, ivText, bodyText, ...rest] = ciphertext.split('.');
      if (version !== VERSION || !kid || !ivText || !bodyText || rest.length > 0) throw new KeyringError('not a Switchboard ciphertext');
      const key = keys.get(kid);
      if (!key) throw new KeyringError(`written with key ${kid}, which is not configured (TOKEN_ENCRYPTION_KEY / TOKEN_ENCRYPTION_OLD_KEYS)`);
      const iv = Buffer.from(ivText, 'base64url');
      const body = Buffer.from(bodyText, 'base64url');
      if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new KeyringError('malformed ciphertext');
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(associatedData, 'utf8'));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      try {
        return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        throw new KeyringError('ciphertext does not decrypt (wrong key, or it belongs to another row)');
      }
    },
    keyIdOf(ciphertext) {
      const [version, kid] = ciphertext.split('.');
      return version === VERSION && kid ? kid : null;
    },
  };
}

/**
 * Remembers decryptions, keyed by the ciphertext and its associated data: a rotated secret has a
 * new ciphertext (fresh IV), so it misses the cache at once, and a ciphertext copied to another
 * row still fails because the associated data differs. Failures are never remembered.
 */
export function decryptCache(keyring: Keyring, maxEntries = 10_000): (ciphertext: string, associatedData: string) => string {
  let entries = new Map<string, string>();
  return (ciphertext, associatedData) => {
    const key = `${associatedData}\n${ciphertext}`;
    let plaintext = entries.get(key);
    if (plaintext === undefined) {
      plaintext = keyring.decrypt(ciphertext, associatedData);
      if (entries.size >= maxEntries) entries = new Map();
      entries.set(key, plaintext);
    }
    return plaintext;
  };
}
