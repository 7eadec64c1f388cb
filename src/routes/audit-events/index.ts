// The organization's audit log, newest first (admin keys only: it shows who did what).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { listAuditEvents } from '../../db/audit-events.js';
import { authenticateAll, organizationOf, requireRole } from '../../plugins/auth.js';
import { listOf, toPage } from '../common.js';
import { AuditEventSchema, ListAuditEventsQuery, toAuditEventJson } from './schemas.js';

const auditEvents: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'apiKey');

  // Audit events with optional filters by action, actor type and time range.
  app.get(
    '/',
    { preHandler: requireRole('admin'), schema: { summary: 'List audit events', querystring: ListAuditEventsQuery, response: { 200: listOf(AuditEventSchema) } } },
    async (request) => {
      const { action, actor_type, actor_id, since, until } = request.query;
      const page = await listAuditEvents(
        app.db,
        organizationOf(request),
        { action, actorType: actor_type, actorId: actor_id, since: since ? new Date(since) : undefined, until: until ? new Date(until) : undefined },
        toPage(request.query),
      );
      return { data: page.data.map(toAuditEventJson), next_cursor: page.nextCursor };
    },
  );
};

export default auditEvents;
