// Graceful shutdown: stop accepting, let in-flight requests finish, close the database — all
// within a deadline, after which the process gives up waiting.
import type { FastifyInstance } from 'fastify';

export type ShutdownOutcome = 'closed' | 'timeout';

export async function shutdown(app: FastifyInstance, timeoutMs: number): Promise<ShutdownOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([app.close().then(() => 'closed' as const), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Installs SIGTERM/SIGINT handlers that drain the app and exit (0 when drained, 1 on timeout). */
export function exitOnSignals(app: FastifyInstance, timeoutMs: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal, timeout_ms: timeoutMs }, 'shutting down: draining in-flight requests');
    void shutdown(app, timeoutMs).then(
      (outcome) => {
        if (outcome === 'timeout') {
          app.log.error({ timeout_ms: timeoutMs }, 'shutdown timed out; exiting with requests still open');
          process.exit(1);
        }
        app.log.info('shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
