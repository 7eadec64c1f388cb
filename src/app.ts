// buildApp(config) is a pure factory: it wires plugins and routes in reading order and returns a
// ready Fastify instance without listening. Only src/server.ts has side effects.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { DestinationStream } from 'pino';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import { createLogger } from './logger.js';
import databasePlugin from './plugins/database.js';
import deadlinePlugin from './plugins/deadline.js';
import errorsPlugin, { clientErrorHandler, frameworkErrorHandler } from './plugins/errors.js';
import livenessFastPath from './plugins/liveness-fast-path.js';
import metricsPlugin from './plugins/metrics.js';
import httpPlugin, { requestId } from './plugins/http.js';
import openapiPlugin from './plugins/openapi.js';
import rateLimitPlugin from './plugins/rate-limit.js';
import requestLogPlugin from './plugins/request-log.js';
import agentCredentialRoutes from './routes/agent-credentials/index.js';
import agentDeliveryRoutes from './routes/agent-deliveries/index.js';
import agentRoutes from './routes/agent/index.js';
import { NoQuery } from './routes/common.js';
import hookRoutes from './routes/hooks/index.js';
import metricsRoutes from './routes/metrics/index.js';
import oauthRoutes from './routes/oauth/index.js';
import webhookRoutes from './routes/webhooks/index.js';
import agentsRoutes from './routes/agents/index.js';
import agentAuthPlugin from './plugins/agent-auth.js';
import auditPlugin from './plugins/audit.js';
import authPlugin, { checkedAdminToken } from './plugins/auth.js';
import jobsPlugin from './plugins/jobs.js';
import keyringPlugin from './plugins/keyring.js';
import apiKeyRoutes from './routes/api-keys/index.js';
import auditEventRoutes from './routes/audit-events/index.js';
import healthRoutes from './routes/health/index.js';
import organizationRoutes from './routes/organization/index.js';
import organizationsRoutes from './routes/organizations/index.js';
import statusRoutes from './routes/status/index.js';

export interface BuildOptions {
  /** Use this open database instead of opening one from the config; the app will not close it. */
  database?: Database;
  /** Send log lines here instead of stdout. */
  logDestination?: DestinationStream;
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  // Configuration that lives in files is checked before anything is opened.
  const adminToken = await checkedAdminToken(config);
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, destination: options.logDestination });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Our request-log plugin writes one line per request instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: requestId,
    trustProxy: config.trustProxy.length > 0 ? config.trustProxy : false,
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Headers must arrive promptly even when bodies are large and slow.
    connectionTimeout: config.requestTimeoutMs,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // Requests refused before routing, or before they are HTTP at all, are problem+json too.
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorate('config', config);

  await app.register(errorsPlugin);
  await app.register(httpPlugin, { config });
  // Before the routes: it gives each a deadline as it is registered.
  await app.register(deadlinePlugin, { timeoutMs: config.databaseWaitTimeoutMs });
  await app.register(requestLogPlugin, { config });
  await app.register(databasePlugin, { config, database: options.database });
  await app.register(metricsPlugin);
  await app.register(livenessFastPath, { config });

  await app.register(keyringPlugin, { config });
  await app.register(jobsPlugin, { intervalMs: config.maintenanceIntervalMs });
  await app.register(auditPlugin, { flushIntervalMs: config.auditFailureFlushMs });
  await app.register(rateLimitPlugin, { config });
  await app.register(authPlugin, { adminToken });
  await app.register(agentAuthPlugin, { config });
  // Before the routes: it describes every route registered after it.
  await app.register(openapiPlugin);

  await app.register(healthRoutes, { readinessTimeoutMs: config.readinessTimeoutMs });
  await app.register(metricsRoutes, { token: config.metricsToken });
  await app.register(
    async (api) => {
      // A parameter the API does not know is a mistake to report (a typo'd filter would otherwise
      // silently list everything), on the routes that take none too. Webhook senders are exempt:
      // some add their own parameters to the URL they were given.
      // The API speaks JSON: text/plain (which Fastify would parse into a string) is 415, not a
      // confusing validation error about the body not being an object.
      api.removeContentTypeParser('text/plain');
      api.addHook('onRoute', (route) => {
        if (route.schema?.querystring === undefined && !route.url.startsWith('/api/v1/hooks/')) route.schema = { ...route.schema, querystring: NoQuery };
      });
      await api.register(organizationsRoutes, { prefix: '/organizations' });
      await api.register(organizationRoutes, { prefix: '/organization' });
      await api.register(statusRoutes, { prefix: '/status' });
      await api.register(apiKeyRoutes, { prefix: '/api-keys' });
      await api.register(auditEventRoutes, { prefix: '/audit-events' });
      await api.register(agentsRoutes, { prefix: '/agents', offlineAfterS: config.agentOfflineAfterS });
      await api.register(agentRoutes, { prefix: '/agent' });
      await api.register(agentDeliveryRoutes, { prefix: '/agent/deliveries' });
      await api.register(webhookRoutes, { prefix: '/webhooks' });
      await api.register(hookRoutes, { prefix: '/hooks' });
      await api.register(oauthRoutes, { prefix: '/oauth' });
      await api.register(agentCredentialRoutes, { prefix: '/agent/credentials' });
    },
    { prefix: '/api/v1' },
  );

  await app.ready();
  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
  }
}
