// The platform status document: the signals an operator pages on (platform admin token).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { platformStatus } from '../../diagnostics/status.js';
import { authenticateAll } from '../../plugins/auth.js';
import { PlatformStatusResponse } from './schemas.js';

const status: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'platformAdmin');

  // Database, keyring, Redis, OAuth, backlog, agents and recent failures in one bounded document.
  app.get('/', { schema: { summary: 'Operator status: the signals to page on', response: { 200: PlatformStatusResponse } } }, async () =>
    platformStatus({ database: app.database, keyring: app.keyring, config: app.config, redisReachable: () => app.limiters.redisReachable() }),
  );
};

export default status;
