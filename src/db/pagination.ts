// Cursor pagination over time-ordered UUIDv7 ids: newest first, the cursor is the last id seen.
import { lt, type SQL } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';

export interface Page {
  limit: number;
  /** The id after which to continue (already decoded and validated by the route schema). */
  after?: string | undefined;
}

export interface PageResult<T> {
  data: T[];
  nextCursor: string | null;
}

export const encodeCursor = (id: string): string => Buffer.from(id, 'utf8').toString('base64url');

/** The id inside a cursor, or null when the cursor was not made by encodeCursor. */
export function decodeCursor(cursor: string): string | null {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? id : null;
}

export function afterCursor(column: PgColumn, page: Page): SQL | undefined {
  return page.after ? lt(column, page.after) : undefined;
}

/** Rows were fetched with limit + 1: the extra row only says there is a next page. */
export function toPage<T extends { id: string }>(rows: T[], page: Page): PageResult<T> {
  const data = rows.slice(0, page.limit);
  const last = data.at(-1);
  return { data, nextCursor: rows.length > page.limit && last ? encodeCursor(last.id) : null };
}
