// GET /metrics for Prometheus. With METRICS_TOKEN set, only `Authorization: Bearer <token>` is
// served. Without it, only a scraper on this host is: the TCP peer must be a loopback address
// (never X-Forwarded-For) and the request must not have come through a proxy, so a reverse proxy
// on the same host cannot expose the metrics to the world.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { safeEqual } from '../../crypto/tokens.js';
import { AppError } from '../../errors.js';
import { bearerToken } from '../../plugins/auth.js';
import { isLoopback } from '../../net.js';

const CHALLENGE = { 'www-authenticate': 'Bearer realm="switchboard-metrics"' };
const PROXY_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip'];

const metrics: FastifyPluginAsync<{ token: string | undefined }> = async (app, { token }) => {
  const authorize = async (request: FastifyRequest) => {
    if (token !== undefined) {
      const presented = bearerToken(request);
      if (presented === null || !safeEqual(presented, token)) {
        request.log.warn('metrics scrape refused: missing or wrong METRICS_TOKEN');
        throw new AppError('unauthorized', { detail: 'The METRICS_TOKEN bearer token is required', headers: CHALLENGE });
      }
      return;
    }
    const peer = request.socket.remoteAddress;
    if (!isLoopback(peer) || PROXY_HEADERS.some((name) => request.headers[name] !== undefined)) {
      request.log.warn({ peer }, 'metrics scrape refused: not a loopback client and METRICS_TOKEN is not set');
      throw new AppError('metrics_loopback_only', {
        detail: 'Without METRICS_TOKEN, /metrics answers only direct connections from this host; set METRICS_TOKEN to scrape from elsewhere',
      });
    }
  };

  // The Prometheus text exposition of this instance.
  app.get('/metrics', { onRequest: authorize, config: { auth: 'metricsToken' }, schema: { summary: 'Prometheus metrics of this instance' } }, async (_request, reply) => {
    reply.type(app.metrics.contentType);
    return app.metrics.exposition();
  });
};

export default metrics;
