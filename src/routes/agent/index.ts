// The agent-facing API: agents authenticate with their own token.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { markAgentSeen } from '../../db/agents.js';
import { agentOf } from '../../plugins/agent-auth.js';
import { NullableTimestamp, optionalBody } from '../common.js';

const AgentAuthResponse = z.object({
  agent: z.object({ id: z.uuid(), name: z.string(), status: z.literal('online') }),
  organization: z.object({ id: z.uuid(), name: z.string() }),
});

const HeartbeatBody = optionalBody(
  z.strictObject({
    status_detail: z.string().max(500).optional().describe('What the agent is doing, shown to operators'),
    version: z.string().max(100).optional(),
  }),
);

const HeartbeatResponse = z.object({ agent: z.object({ id: z.uuid(), status: z.literal('online'), last_seen_at: NullableTimestamp }) });

const agent: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();

  // Lets an agent check its token at start-up. Every attempt counts against the per-IP limit.
  app.post(
    '/auth',
    { onRequest: [app.limitAgentAuthAttempts, app.authenticateAgent], config: { ownDeadline: true }, schema: { summary: 'Check the agent token (counts against the per-IP limit)', response: { 200: AgentAuthResponse } } },
    async (request) => {
      const principal = agentOf(request);
      return {
        agent: { id: principal.agentId, name: principal.agentName, status: 'online' as const },
        organization: { id: principal.organizationId, name: principal.organizationName },
      };
    },
  );

  // Liveness from the agent, with optional detail for operators.
  app.post(
    '/heartbeat',
    {
      onRequest: app.authenticateAgent,
      schema: { summary: 'Heartbeat, with optional detail for operators', body: HeartbeatBody, response: { 200: HeartbeatResponse } },
    },
    async (request) => {
      const principal = agentOf(request);
      const { status_detail, version } = request.body;
      // Detail or version changes are written now; a bare heartbeat relies on the throttled
      // last-seen write the authentication already made.
      const lastSeenAt =
        status_detail !== undefined || version !== undefined
          ? await markAgentSeen(app.db, principal.organizationId, principal.agentId, { statusDetail: status_detail, version })
          : new Date();
      return { agent: { id: principal.agentId, status: 'online' as const, last_seen_at: lastSeenAt?.toISOString() ?? null } };
    },
  );
};

export default agent;
