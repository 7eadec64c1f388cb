// Organizations (tenants). Only the platform admin lists, creates and deletes them.
import { and, desc, eq, sql } from 'drizzle-orm';
import type { Db, DbOrTx } from './client.js';
import { afterCursor, toPage, type Page } from './pagination.js';
import { organizations } from './schema.js';

export type Organization = typeof organizations.$inferSelect;

export async function createOrganization(db: DbOrTx, input: { name: string; slug: string }): Promise<Organization | null> {
  const rows = await db.insert(organizations).values(input).onConflictDoNothing({ target: organizations.slug }).returning();
  return rows[0] ?? null;
}

export async function getOrganization(db: DbOrTx, id: string): Promise<Organization | null> {
  const rows = await db.select().from(organizations).where(eq(organizations.id, id)).limit(1);
  return rows[0] ?? null;
}

export async function listOrganizations(db: DbOrTx, page: Page) {
  const rows = await db
    .select()
    .from(organizations)
    .where(and(afterCursor(organizations.id, page)))
    .orderBy(desc(organizations.id))
    .limit(page.limit + 1);
  return toPage(rows, page);
}

/** Deletes the organization and, through ON DELETE CASCADE, everything it owns. */
export async function deleteOrganization(db: DbOrTx, id: string): Promise<boolean> {
  const rows = await db.delete(organizations).where(eq(organizations.id, id)).returning({ id: organizations.id });
  return rows.length > 0;
}

/**
 * A transaction that writes an organization's rows. It first takes the organization's row in key
 * share mode (as its audit event and foreign keys would later): locks in the same order as the
 * organization's deletion (the organization, then its rows), so a write and a deletion running
 * at once wait for each other instead of deadlocking. Once the deletion has committed, the write
 * finds nothing of the organization left. `exclusive`: the row is taken in no-key-update mode
 * instead, so such transactions of one organization run one at a time (for a row that may not
 * exist yet, which no row lock can guard); other writes are not held up.
 */
export async function inOrganization<T>(db: Db, organizationId: string, work: (tx: DbOrTx) => Promise<T>, options: { exclusive?: boolean } = {}): Promise<T> {
  return db.transaction(async (tx) => {
    const mode = options.exclusive ? sql`for no key update` : sql`for key share`;
    await tx.execute(sql`select 1 from ${organizations} where id = ${organizationId} ${mode}`);
    return work(tx);
  });
}
