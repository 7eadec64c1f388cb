// Builds the encryption keyring from the configuration. On a bare machine (embedded database, not
// production) a missing key is generated once into DATA_DIR so `npm start` just works; with
// NODE_ENV=production or a Postgres DATABASE_URL, TOKEN_ENCRYPTION_KEY is required.
import { mkdir, open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Config } from './config.js';
import { createKeyring, generateKey, parseKey, type Keyring } from './crypto/keyring.js';

export interface LoadedKeyring {
  keyring: Keyring;
  /** Where a generated development key lives, or 'memory' for an in-memory DATA_DIR; null when configured. */
  generated: string | null;
}

export async function loadKeyring(config: Config): Promise<LoadedKeyring> {
  const old = config.tokenEncryptionOldKeys.map(parseKey);
  if (config.tokenEncryptionKey) return { keyring: createKeyring(parseKey(config.tokenEncryptionKey), old), generated: null };
  if (config.dataDir.startsWith('memory://')) return { keyring: createKeyring(parseKey(generateKey()), old), generated: 'memory' };
  await mkdir(config.dataDir, { recursive: true });
  const path = resolve(config.dataDir, 'encryption.key');
  try {
    const handle = await open(path, 'wx', 0o600);
    await handle.writeFile(`${generateKey()}\n`);
    await handle.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return { keyring: createKeyring(parseKey(await readFile(path, 'utf8')), old), generated: path };
}
