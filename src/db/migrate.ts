// Applies the drizzle-kit migrations in drizzle/ and reports how many are applied or pending.
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { chainLegacyAuditEvents } from './audit-chain.js';
import { rowsOf, type Database, type Db } from './client.js';
import { requireUtf8Database } from './encoding.js';

// Same relative place from src/db/ and dist/db/.
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Arbitrary but fixed: the advisory lock that serializes migrations across instances. */
const MIGRATION_LOCK_KEY = 0x5b0a4d;

export async function applyMigrations(database: Database): Promise<void> {
  await requireUtf8Database(database.db);
  await database.withExclusiveLock(MIGRATION_LOCK_KEY, async () => {
    const config = { migrationsFolder: MIGRATIONS_FOLDER };
    if (database.kind === 'postgres') {
      await migratePostgres(database.db as unknown as PostgresJsDatabase, config);
    } else {
      await migratePglite(database.db as unknown as PgliteDatabase, config);
    }
    // A data step SQL cannot do: the audit rows of a database upgraded from before the hash chain
    // are chained once, by the first migration run that finds no chain started.
    await chainLegacyAuditEvents(database.db);
  });
}

export interface MigrationStatus {
  applied: number;
  pending: number;
}

let cachedFiles: ReturnType<typeof readMigrationFiles> | undefined;

function localMigrations() {
  cachedFiles ??= readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER });
  return cachedFiles;
}

/** Compares the migrations shipped with this build to the ones recorded in the database. */
export async function migrationStatus(db: Db): Promise<MigrationStatus> {
  const local = localMigrations();
  const exists = rowsOf<{ present: boolean }>(
    await db.execute(sql`select to_regclass('drizzle.__drizzle_migrations') is not null as present`),
  );
  if (!exists[0]?.present) return { applied: 0, pending: local.length };
  const rows = rowsOf<{ created_at: string | number }>(
    await db.execute(sql`select created_at from drizzle.__drizzle_migrations`),
  );
  const appliedAt = new Set(rows.map((row) => Number(row.created_at)));
  const pending = local.filter((migration) => !appliedAt.has(migration.folderMillis)).length;
  return { applied: local.length - pending, pending };
}
