// Entry point: configuration → app → listen, with graceful shutdown on SIGTERM/SIGINT.
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { loadEnvFile } from './env-file.js';
import { exitOnSignals } from './lifecycle.js';

async function main(): Promise<void> {
  loadEnvFile();
  const config = loadConfig(process.env);
  const app = await buildApp(config);
  exitOnSignals(app, config.shutdownTimeoutMs);
  await app.listen({ host: config.host, port: config.port });
}

main().catch((err: unknown) => {
  // Start-up failures are operator errors: one clear message, no stack trace.
  const message = err instanceof ConfigError ? err.message : `Switchboard failed to start: ${err instanceof Error ? err.message : String(err)}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
