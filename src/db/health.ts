// Readiness checks against the database: a real round-trip and the migration state.
import { performance } from 'node:perf_hooks';
import type { Db } from './client.js';
import { pingDatabase } from './client.js';
import type { Keyring } from '../crypto/keyring.js';
import { checkCanaries } from './canaries.js';
import { migrationStatus } from './migrate.js';

export type CheckResult =
  | { status: 'ok'; [detail: string]: unknown }
  | { status: 'fail'; error: string; [detail: string]: unknown };

export interface Readiness {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

/**
 * Rejects with `timed out after N ms` (or the error `timedOut` makes) when `promise` takes longer
 * than `ms`. The promise itself runs on; a later rejection of it is handled here.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, timedOut = () => new Error(`timed out after ${ms} ms`)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function checkReadiness(db: Db, timeoutMs: number, keyring: Keyring): Promise<Readiness> {
  const started = performance.now();
  try {
    await withTimeout(pingDatabase(db), timeoutMs);
  } catch (err) {
    // Only a fixed phrase: driver messages can carry host names or connection strings.
    const timedOut = err instanceof Error && err.message.startsWith('timed out');
    return {
      ready: false,
      checks: {
        database: { status: 'fail', error: timedOut ? 'timeout' : 'unreachable' },
        migrations: { status: 'fail', error: 'database_unreachable' },
      },
    };
  }
  const database: CheckResult = { status: 'ok', latency_ms: Math.round((performance.now() - started) * 10) / 10 };
  try {
    const { applied, pending } = await withTimeout(migrationStatus(db), timeoutMs);
    const migrations: CheckResult =
      pending === 0 ? { status: 'ok', applied, pending } : { status: 'fail', error: 'migrations_pending', applied, pending };
    if (pending > 0) return { ready: false, checks: { database, migrations } };
    // The configured keys must decrypt what this database holds (a restore with another key,
    // or a lost key, must not look like "no credentials").
    const canaries = await withTimeout(checkCanaries(db, keyring), timeoutMs);
    const keys: CheckResult = canaries.ok
      ? { status: 'ok', current_key_id: canaries.current_key_id }
      : {
          status: 'fail',
          error: canaries.unknown_key_ids.length > 0 ? 'encryption_key_missing' : 'encryption_key_mismatch',
          current_key_id: canaries.current_key_id,
          unknown_key_ids: canaries.unknown_key_ids,
          failing_key_ids: canaries.failing_key_ids,
        };
    return { ready: canaries.ok, checks: { database, migrations, keyring: keys } };
  } catch {
    return { ready: false, checks: { database, migrations: { status: 'fail', error: 'unknown' } } };
  }
}
