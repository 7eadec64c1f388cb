// The platform admin secret, from ADMIN_TOKEN or from ADMIN_TOKEN_FILE. The file is checked on
// every use and re-read when it changes, so the token can be rotated without a restart.
import { readFile, stat } from 'node:fs/promises';

export const ADMIN_TOKEN_MIN_LENGTH = 32;

export class AdminTokenError extends Error {
  override name = 'AdminTokenError';
}

export interface AdminTokenSource {
  /** The current token, or null when the admin API is not configured. Throws AdminTokenError when the file is unusable. */
  current(): Promise<string | null>;
}

export function adminTokenSource(options: { token?: string | undefined; file?: string | undefined }): AdminTokenSource {
  if (options.token !== undefined) {
    const token = options.token;
    return { current: async () => token };
  }
  const file = options.file;
  if (file === undefined) return { current: async () => null };

  let cached: { signature: string; token: string } | undefined;
  return {
    async current() {
      let signature: string;
      try {
        const info = await stat(file);
        signature = `${info.ino}:${info.size}:${info.mtimeMs}`;
      } catch {
        throw new AdminTokenError(`ADMIN_TOKEN_FILE ${file} cannot be read`);
      }
      if (cached?.signature === signature) return cached.token;
      const token = (await readFile(file, 'utf8')).trim();
      if (token.length < ADMIN_TOKEN_MIN_LENGTH) {
        cached = undefined;
        throw new AdminTokenError(`ADMIN_TOKEN_FILE ${file} must hold at least ${ADMIN_TOKEN_MIN_LENGTH} characters`);
      }
      cached = { signature, token };
      return token;
    },
  };
}
