// One log line per request, written by us rather than Fastify so probes can be left out and
// slow requests stand out as warnings.
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { redactUrl } from '../logger.js';
import { UNMATCHED_ROUTE } from './metrics.js';

// Scrapes are as regular as probes; refused scrapes still log a warning of their own.
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

export default fp<{ config: Config }>(
  async (app, { config }) => {
    // Synchronous (callback) hook: no promise per request for a line that is often filtered out.
    app.addHook('onResponse', (request, reply, done) => {
      logRequest(request, reply);
      done();
    });

    function logRequest(request: FastifyRequest, reply: FastifyReply) {
      const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
      const durationMs = Math.round(reply.elapsedTime * 10) / 10;
      const slow = config.requestLogSlowMs > 0 && durationMs >= config.requestLogSlowMs;
      if (!slow && !config.requestLogIncludeHealth && PROBES.has(route)) return;
      const line = {
        method: request.method,
        url: redactUrl(request.url),
        route,
        status: reply.statusCode,
        duration_ms: durationMs,
        remote_address: request.ip,
      };
      if (slow) request.log.warn(line, 'slow request');
      else request.log.info(line, 'request completed');
    }
  },
  { name: 'request-log' },
);
