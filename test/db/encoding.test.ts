// Migrating refuses a database whose encoding is not UTF8 (db/encoding.ts): any JSON string an API
// accepts travels as UTF-8 text, which such a database would convert or refuse.
import postgres from 'postgres';
import t from 'tap';
import { openDatabase } from '../../src/db/client.js';
import { applyMigrations, migrationStatus } from '../../src/db/migrate.js';
import { randomName, TEST_DATABASE_URL } from '../helper.js';

t.test('migrations refuse a SQL_ASCII database with a message that says what to do', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a Postgres server to create a SQL_ASCII database on)' }, async (t) => {
  const name = `switchboard_ascii_${randomName().replace(/\W/g, '_').toLowerCase()}`;
  const admin = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  await admin.unsafe(`create database ${name} encoding 'SQL_ASCII' lc_collate 'C' lc_ctype 'C' template template0`);
  const url = new URL(TEST_DATABASE_URL!);
  url.pathname = `/${name}`;
  const database = await openDatabase({ databaseUrl: url.toString(), poolMax: 1, connectTimeoutMs: 5000, dataDir: 'memory://' });
  t.teardown(() => database.close());
  await t.rejects(applyMigrations(database), /the database's encoding is SQL_ASCII; Switchboard needs a UTF8 database/);
  t.equal((await migrationStatus(database.db)).applied, 0, 'nothing was applied');
});
