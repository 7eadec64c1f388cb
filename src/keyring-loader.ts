// Builds the encryption keyring from the configuration. Outside production a missing key is
// generated once into DATA_DIR so `npm start` and `docker compose up` just work; with
// NODE_ENV=production TOKEN_ENCRYPTION_KEY is required. Instances that generated different keys
// over one database are caught by the keyring canary (/readyz: encryption_key_missing).
import { mkdir, open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Config } from './config.js';
import { createKeyring, generateKey, parseKey, type Keyring } from './crypto/keyring.js';

export interface LoadedKeyring {
  keyring: Keyring;
  /** Where a generated development key lives, or 'memory' for an in-memory DATA_DIR; null when configured. */
  generated: string | null;
}

/** Where a development key is generated when TOKEN_ENCRYPTION_KEY is not set. */
export const developmentKeyPath = (config: Config): string => resolve(config.dataDir, 'encryption.key');

/**
 * The keyring the server would use, without generating anything (for `doctor`): null when no key
 * is configured and none was generated into DATA_DIR yet.
 */
export async function readKeyring(config: Config): Promise<LoadedKeyring | null> {
  const old = config.tokenEncryptionOldKeys.map(parseKey);
  if (config.tokenEncryptionKey) return { keyring: createKeyring(parseKey(config.tokenEncryptionKey), old), generated: null };
  if (config.dataDir.startsWith('memory://')) return null;
  const path = developmentKeyPath(config);
  try {
    return { keyring: createKeyring(parseKey(await readFile(path, 'utf8')), old), generated: path };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function loadKeyring(config: Config): Promise<LoadedKeyring> {
  const existing = await readKeyring(config);
  if (existing) return existing;
  const old = config.tokenEncryptionOldKeys.map(parseKey);
  if (config.dataDir.startsWith('memory://')) return { keyring: createKeyring(parseKey(generateKey()), old), generated: 'memory' };
  await mkdir(config.dataDir, { recursive: true });
  try {
    // 'wx': of several processes starting at once, one writes the key and the others read it.
    const handle = await open(developmentKeyPath(config), 'wx', 0o600);
    await handle.writeFile(`${generateKey()}\n`);
    await handle.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return (await readKeyring(config))!;
}
