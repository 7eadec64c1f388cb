// Every route answers within REQUEST_TIMEOUT_MS less half a second (Config.databaseWaitTimeoutMs),
// even when the database (or Google) accepted a call and never answered: without a deadline the
// client would wait until the idle connection is closed, and get no answer at all. Fastify's
// handlerTimeout sends FST_ERR_HANDLER_TIMEOUT through our error handler (503 unavailable with
// Retry-After; plugins/errors.ts) and aborts request.signal. The handler's work is not cancelled:
// a write may still complete after that 503, as with any lost answer.
// The hot paths (ingest, agent authentication, acks) have the same deadline on their batched
// queries (DatabaseWaitTimeout), so they set config.ownDeadline and skip the per-request
// AbortController and timer.
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's database calls time out on their own at databaseWaitTimeoutMs: no handler deadline. */
    ownDeadline?: boolean;
  }
}

export default fp<{ timeoutMs: number }>(
  async (app, { timeoutMs }) => {
    app.addHook('onRoute', (route) => {
      if (route.config?.ownDeadline || route.handlerTimeout !== undefined) return;
      route.handlerTimeout = timeoutMs;
    });
  },
  { name: 'deadline' },
);
