// Recognizes errors that mean "the database cannot be reached right now" (as opposed to a bug
// or a constraint violation), so callers can answer 503 and clients retry.

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'DATABASE_WAIT_TIMEOUT',
]);

// SQLSTATE class 08 (connection exception), 57P01-57P03 (shutdown / cannot connect now), 53300 (too many connections).
const SQLSTATE = /^(08...|57P0[123]|53300)$/;

export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || SQLSTATE.test(code))) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** SQLSTATE 42501: the database role lacks a privilege the statement needs. */
export function isPermissionDenied(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '42501';
}

/**
 * A request waited longer for the database than it may (see Config.databaseWaitTimeoutMs): it is
 * answered 503 so the client retries, while the query it joined may still complete.
 */
export class DatabaseWaitTimeout extends Error {
  override name = 'DatabaseWaitTimeout';
  readonly code = 'DATABASE_WAIT_TIMEOUT';
  constructor(ms: number) {
    super(`no answer from the database within ${ms} ms`);
  }
}

/** SQLSTATE foreign_key_violation: a referenced row is gone (deleted by a concurrent transaction). */
export const FOREIGN_KEY_VIOLATION = '23503';
/** SQLSTATEs of a transaction Postgres cancelled because of a concurrent one: retrying it is safe. */
export const DEADLOCK_DETECTED = '40P01';
export const SERIALIZATION_FAILURE = '40001';

/** The SQLSTATE of a database error (through Drizzle's wrapper), if it is one. */
export function sqlState(error: unknown): string | null {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}
