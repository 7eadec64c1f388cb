// Bearer tokens of the form `<prefix>_<public id>_<secret>`: the public id finds the row with one
// indexed lookup; the 256-bit secret is stored only as a SHA-256 hash and compared in constant time.
// A fast hash is right here: the secret is random, so there is nothing for a slow KDF to protect.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface IssuedToken {
  publicId: string;
  token: string;
  secretHash: string;
}

export interface ParsedToken {
  publicId: string;
  secret: string;
}

const PUBLIC_ID = /^[0-9a-f]{16}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;

export function issueToken(prefix: string): IssuedToken {
  const publicId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { publicId, token: `${prefix}_${publicId}_${secret}`, secretHash: hashSecret(secret) };
}

/** Splits a presented token; null when it is not of this prefix's shape. */
export function parseToken(prefix: string, presented: string): ParsedToken | null {
  if (!presented.startsWith(`${prefix}_`)) return null;
  const rest = presented.slice(prefix.length + 1);
  const publicId = rest.slice(0, 16);
  const secret = rest.slice(17);
  if (rest[16] !== '_' || !PUBLIC_ID.test(publicId) || !SECRET.test(secret)) return null;
  return { publicId, secret };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function verifySecret(secret: string, storedHash: string): boolean {
  const expected = Buffer.from(storedHash, 'hex');
  const actual = createHash('sha256').update(secret).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Constant-time comparison of two arbitrary strings (e.g. the platform admin token). */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** What may be logged of a presented credential: at most its first 6 characters. */
export function tokenHint(presented: string): string {
  return presented.slice(0, 6);
}
