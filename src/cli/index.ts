// `npm run cli -- <command>`: maintenance commands that run without the server.
import { ConfigError, loadConfig } from '../config.js';
import { openDatabase } from '../db/client.js';
import { applyMigrations, migrationStatus } from '../db/migrate.js';
import { loadEnvFile } from '../env-file.js';

const USAGE = `Usage: npm run cli -- <command>

Commands:
  migrate        apply pending database migrations and report the result
  help           show this message
`;

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  if (command === undefined || command === 'help' || command === '--help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  loadEnvFile();
  const config = loadConfig(process.env);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    poolMax: 2,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    dataDir: config.dataDir,
  });
  try {
    switch (command) {
      case 'migrate': {
        await applyMigrations(database);
        const status = await migrationStatus(database.db);
        process.stdout.write(`migrations applied: ${status.applied}, pending: ${status.pending} (${database.kind} database)\n`);
        return 0;
      }
      default:
        process.stderr.write(`Unknown command: ${command}\n\n${USAGE}`);
        return 2;
    }
  } finally {
    await database.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof ConfigError ? err.message : `error: ${err instanceof Error ? err.message : String(err)}`;
    process.stderr.write(`${message}\n`);
    process.exit(1);
  },
);
