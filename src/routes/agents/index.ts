// Operators register agents, read their status, disable them and rotate their tokens.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { issueToken } from '../../crypto/tokens.js';
import { addAgentToken, AGENT_TOKEN_PREFIX, createAgent, deleteAgent, getAgent, listAgents, retireAgentTokens, updateAgent } from '../../db/agents.js';
import { recordAuditEvents } from '../../db/audit-events.js';
import { inOrganization } from '../../db/organizations.js';
import { AppError } from '../../errors.js';
import { authenticateAll, organizationOf, requireRole } from '../../plugins/auth.js';
import { auditEvent } from '../../plugins/audit.js';
import { IdParams, listOf, NoContent, toPage } from '../common.js';
import {
  AgentResponse,
  AgentSchema,
  AgentWithTokenResponse,
  CreateAgentBody,
  ListAgentsQuery,
  RotateTokenBody,
  toAgentJson,
  UpdateAgentBody,
} from './schemas.js';

const notFound = () => new AppError('not_found', { detail: 'No such agent' });

const agents: FastifyPluginAsync<{ offlineAfterS: number }> = async (instance, { offlineAfterS }) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'apiKey');
  const json = (agent: Parameters<typeof toAgentJson>[0]) => toAgentJson(agent, offlineAfterS);

  // Register an agent; its token is in this response only.
  app.post(
    '/',
    {
      preHandler: requireRole('admin'),
      schema: { summary: 'Register an agent (its token is shown once)', body: CreateAgentBody, response: { 201: AgentWithTokenResponse } },
    },
    async (request, reply) => {
      const organizationId = organizationOf(request);
      const issued = issueToken(AGENT_TOKEN_PREFIX);
      const agent = await inOrganization(app.db, organizationId, async (tx) => {
        const created = await createAgent(tx, organizationId, request.body);
        await addAgentToken(tx, organizationId, created.id, issued);
        await recordAuditEvents(tx, [auditEvent(request, { action: 'agent.created', targetType: 'agent', targetId: created.id, details: { name: created.name } })]);
        return created;
      });
      reply.status(201);
      return { agent: json(agent), token: issued.token };
    },
  );

  // List agents, optionally by status.
  app.get('/', { schema: { summary: 'List agents', querystring: ListAgentsQuery, response: { 200: listOf(AgentSchema) } } }, async (request) => {
    const page = await listAgents(app.db, organizationOf(request), { status: request.query.status }, offlineAfterS, toPage(request.query));
    return { data: page.data.map(json), next_cursor: page.nextCursor };
  });

  // One agent.
  app.get('/:id', { schema: { summary: 'Get an agent', params: IdParams, response: { 200: AgentResponse } } }, async (request) => {
    const agent = await getAgent(app.db, organizationOf(request), request.params.id);
    if (!agent) throw notFound();
    return { agent: json(agent) };
  });

  // Rename, describe, tag, disable or re-enable an agent.
  app.patch(
    '/:id',
    { preHandler: requireRole('admin'), schema: { summary: 'Update or disable an agent', params: IdParams, body: UpdateAgentBody, response: { 200: AgentResponse } } },
    async (request) => {
      const organizationId = organizationOf(request);
      const agent = await inOrganization(app.db, organizationId, async (tx) => {
        const updated = await updateAgent(tx, organizationId, request.params.id, request.body);
        if (!updated) throw notFound();
        await recordAuditEvents(tx, [
          auditEvent(request, { action: 'agent.updated', targetType: 'agent', targetId: updated.id, details: { fields: Object.keys(request.body) } }),
        ]);
        return updated;
      });
      return { agent: json(agent) };
    },
  );

  // Delete an agent; its tokens stop working at once.
  app.delete('/:id', { preHandler: requireRole('admin'), schema: { summary: 'Delete an agent', params: IdParams, response: { 204: NoContent } } }, async (request, reply) => {
    const organizationId = organizationOf(request);
    await inOrganization(app.db, organizationId, async (tx) => {
      const deleted = await deleteAgent(tx, organizationId, request.params.id);
      if (!deleted) throw notFound();
      await recordAuditEvents(tx, [auditEvent(request, { action: 'agent.deleted', targetType: 'agent', targetId: deleted.id, details: { name: deleted.name } })]);
    });
    return reply.status(204).send();
  });

  // Issue a new token; the old one stops now or after grace_seconds.
  app.post(
    '/:id/token',
    { preHandler: requireRole('admin'), schema: { summary: 'Issue a new agent token', params: IdParams, body: RotateTokenBody, response: { 200: AgentWithTokenResponse } } },
    async (request) => {
      const organizationId = organizationOf(request);
      const graceSeconds = request.body.grace_seconds;
      const issued = issueToken(AGENT_TOKEN_PREFIX);
      const agent = await inOrganization(app.db, organizationId, async (tx) => {
        // Locked: of two rotations at once, the later one retires the token the earlier one issued.
        const found = await getAgent(tx, organizationId, request.params.id, { forUpdate: true });
        if (!found) throw notFound();
        await retireAgentTokens(tx, organizationId, found.id, graceSeconds);
        await addAgentToken(tx, organizationId, found.id, issued);
        await recordAuditEvents(tx, [
          auditEvent(request, { action: 'agent.token_rotated', targetType: 'agent', targetId: found.id, details: { grace_seconds: graceSeconds } }),
        ]);
        return found;
      });
      return { agent: json(agent), token: issued.token };
    },
  );
};

export default agents;
