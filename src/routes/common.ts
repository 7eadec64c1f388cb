// Schemas shared by every route area: ids, pagination, timestamps.
import { z } from 'zod';
import { decodeCursor } from '../db/pagination.js';

/**
 * An id in a path: a UUID in either case, handed to the route in its canonical lower case (as the
 * database answers it), so ids compared in code (batched answers, caches) match the rows' ids.
 */
export const PathId = z
  .uuid({ error: 'must be a UUID' })
  .transform((id) => id.toLowerCase());

export const IdParams = z.strictObject({ id: PathId });

export const PageQueryShape = {
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z
    .string()
    .max(200)
    .optional()
    .transform((cursor, ctx) => {
      if (cursor === undefined) return undefined;
      const id = decodeCursor(cursor);
      if (id === null) {
        ctx.addIssue({ code: 'custom', message: 'is not a cursor returned by this API' });
        return z.NEVER;
      }
      return id;
    }),
};

export const PageQuery = z.strictObject(PageQueryShape);

/** The query of a route that takes no parameters. */
export const NoQuery = z.strictObject({});

/** Query to data-layer page. */
export const toPage = (query: { limit: number; cursor?: string | undefined }) => ({ limit: query.limit, after: query.cursor });

export const Timestamp = z.iso.datetime({ offset: true });
export const NullableTimestamp = Timestamp.nullable();

const EARLIEST = Date.parse('0001-01-01T00:00:00Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');

/** A timestamp a caller sends: also one Postgres can store (year 0000, or past 9999 once in UTC, cannot be). */
export const InputTimestamp = Timestamp.refine(
  (value) => {
    const ms = Date.parse(value);
    return ms >= EARLIEST && ms <= LATEST;
  },
  { error: 'must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z' },
);

export const iso = (date: Date): string => date.toISOString();
export const isoOrNull = (date: Date | null): string | null => (date ? date.toISOString() : null);

export function listOf<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), next_cursor: z.string().nullable() });
}

/** A name as people type it: trimmed, non-empty, bounded, no control characters. */
export const Name = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, { error: 'must not contain control characters' });

/** The response of a route that answers 204 with no body. */
export const NoContent = z.undefined().describe('No content');

/** A JSON body that may be left out entirely (Fastify then passes null). */
export const optionalBody = <T extends z.ZodType>(schema: T) => z.preprocess((value) => value ?? {}, schema);
