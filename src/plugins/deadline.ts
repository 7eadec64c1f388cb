// Every route answers within REQUEST_TIMEOUT_MS less half a second (Config.databaseWaitTimeoutMs),
// even when the database (or Google) accepted a call and never answered: without a deadline the
// client would wait until the idle connection is closed, and get no answer at all. Fastify's
// handlerTimeout sends FST_ERR_HANDLER_TIMEOUT through our error handler (503 unavailable with
// Retry-After; plugins/errors.ts) and aborts request.signal. The handler's work is not cancelled:
// a write may still complete after that 503, as with any lost answer. When it does, its answer is
// dropped and one warning says how it ended, instead of Fastify's "Reply was already sent" (for
// each late send) or "Promise errored, but reply.sent = true was set".
// The hot paths (ingest, agent authentication, acks) have the same deadline on their batched
// queries (DatabaseWaitTimeout), so they set config.ownDeadline and skip the per-request
// AbortController and timer.
import type { FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's database calls time out on their own at databaseWaitTimeoutMs: no handler deadline. */
    ownDeadline?: boolean;
  }
}

/** True when this request was answered by its deadline (not by the handler, not a client abort). */
const answeredByDeadline = (request: FastifyRequest, reply: FastifyReply): boolean =>
  reply.sent && request.signal.aborted && (request.signal.reason as { code?: unknown } | undefined)?.code === 'FST_ERR_HANDLER_TIMEOUT';

const LATE = 'the request finished after its deadline answer (503 unavailable); what it did was not undone';

/**
 * Called once the deadline's 503 is sent (plugins/errors.ts): from then on the handler's own
 * answer, reply.send or reply.redirect included, is dropped without Fastify's warning.
 */
export function dropLateAnswers(reply: FastifyReply): void {
  const send = Object.getPrototypeOf(reply).send as FastifyReply['send'];
  reply.send = function (this: FastifyReply, payload?: unknown) {
    return reply.sent ? reply : send.call(reply, payload);
  } as FastifyReply['send'];
}

export default fp<{ timeoutMs: number }>(
  async (app, { timeoutMs }) => {
    app.addHook('onRoute', (route) => {
      if (route.config?.ownDeadline || route.handlerTimeout !== undefined) return;
      route.handlerTimeout = timeoutMs;
      const handler = route.handler;
      route.handler = async function (this: unknown, request, reply) {
        let payload: unknown;
        try {
          payload = await (handler as RouteHandlerMethod).call(this as never, request, reply);
        } catch (err) {
          if (!answeredByDeadline(request, reply)) throw err;
          request.log.warn({ err, outcome: 'failed' }, LATE);
          return undefined;
        }
        if (!answeredByDeadline(request, reply)) return payload;
        request.log.warn({ outcome: 'completed' }, LATE);
        return undefined;
      };
    });
  },
  { name: 'deadline' },
);
