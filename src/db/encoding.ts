// Switchboard sends text to Postgres as UTF-8: names, delivery headers, audit details, anything an
// API accepts as a JSON string. In a database of another encoding, non-ASCII characters would be
// converted or refused (a 500 for a valid request), so migrating (at start-up or `npm run
// migrate`) refuses such a database instead.
import { sql } from 'drizzle-orm';
import { rowsOf, type DbOrTx } from './client.js';

export async function requireUtf8Database(db: DbOrTx): Promise<void> {
  const rows = rowsOf<{ encoding: string }>(await db.execute(sql`select current_setting('server_encoding') as encoding`));
  const encoding = rows[0]?.encoding;
  if (encoding !== 'UTF8') {
    throw new Error(
      `the database's encoding is ${encoding ?? 'unknown'}; Switchboard needs a UTF8 database (CREATE DATABASE … ENCODING 'UTF8', the default of the official Postgres images)`,
    );
  }
}
