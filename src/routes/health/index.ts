// Liveness and readiness probes for load balancers and orchestrators.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { checkReadiness } from '../../db/health.js';
import { HealthResponse, ReadinessResponse } from './schemas.js';

const health: FastifyPluginAsync<{ readinessTimeoutMs: number }> = async (instance, { readinessTimeoutMs }) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();

  // Liveness: the process answers. Deliberately checks no dependency, so a database outage
  // never makes an orchestrator restart healthy processes. Plain probes over HTTP are answered
  // before Fastify with the same answer (plugins/liveness-fast-path.ts); this route answers the rest.
  app.get('/healthz', { schema: { summary: 'Liveness', response: { 200: HealthResponse } } }, async () => ({ status: 'ok' as const }));

  // Readiness: a real database round-trip and every migration applied.
  app.get('/readyz', { schema: { summary: 'Readiness: database, migrations and encryption keys', response: { 200: ReadinessResponse, 503: ReadinessResponse } } }, async (_request, reply) => {
    const { ready, checks } = await checkReadiness(app.db, readinessTimeoutMs, app.keyring);
    if (!ready) reply.status(503);
    return { status: ready ? ('ready' as const) : ('not_ready' as const), checks };
  });
};

export default health;
