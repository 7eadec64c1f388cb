// Opens the database (or adopts one handed in), applies migrations when configured, and closes
// what it opened when the app closes.
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { openDatabase, type Database, type Db } from '../db/client.js';
import { applyMigrations } from '../db/migrate.js';

declare module 'fastify' {
  interface FastifyInstance {
    database: Database;
    db: Db;
  }
}

export interface DatabasePluginOptions {
  config: Config;
  /** An already open database the app must use but not close (the CLI and tests share one). */
  database?: Database | undefined;
}

export default fp<DatabasePluginOptions>(
  async (app, { config, database }) => {
    const owned = database === undefined;
    const handle =
      database ??
      (await openDatabase({
        databaseUrl: config.databaseUrl,
        poolMax: config.databasePoolMax,
        connectTimeoutMs: config.databaseConnectTimeoutMs,
        dataDir: config.dataDir,
      }));
    if (owned && handle.kind === 'embedded') {
      app.log.info({ data_dir: config.dataDir }, 'DATABASE_URL is not set: using the embedded Postgres (PGlite) in DATA_DIR');
    }
    try {
      if (config.migrateOnStart) await applyMigrations(handle);
    } catch (err) {
      if (owned) await handle.close();
      throw err;
    }
    app.decorate('database', handle);
    app.decorate('db', handle.db);
    if (owned) app.addHook('onClose', async () => handle.close());
  },
  { name: 'database' },
);
