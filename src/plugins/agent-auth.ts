// Authentication of agents by their own token (X-Agent-Token, or Authorization: Bearer).
// Failed attempts count against the per-IP agent-auth limit; successful agents are limited per
// agent, never per IP, so many agents behind one NAT do not starve each other.
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { parseToken, tokenHint, verifySecret } from '../crypto/tokens.js';
import { AGENT_TOKEN_PREFIX, agentCredentialLookup, markAgentSeen, type AgentCredential } from '../db/agents.js';
import { AppError } from '../errors.js';
import { bearerToken, recordRouteAuth, type Principal } from './auth.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook for agent routes. */
    authenticateAgent(request: FastifyRequest): Promise<void>;
    /** onRequest hook for POST /agent/auth: every attempt counts against the per-IP limit. */
    limitAgentAuthAttempts(request: FastifyRequest): Promise<void>;
  }
  interface FastifyRequest {
    agentAuthCounted: boolean;
  }
}

export type AgentPrincipal = Extract<Principal, { type: 'agent' }>;

/** The authenticated agent; routes behind authenticateAgent always have one. */
export function agentOf(request: FastifyRequest): AgentPrincipal {
  if (request.principal?.type !== 'agent') throw new AppError('unauthorized', { detail: 'A valid agent token is required', headers: CHALLENGE });
  return request.principal;
}

const CHALLENGE = { 'www-authenticate': 'Bearer realm="switchboard-agent"' };

function presentedToken(request: FastifyRequest): string | null {
  const header = request.headers['x-agent-token'];
  if (typeof header === 'string' && header.trim() !== '') return header.trim();
  return bearerToken(request);
}

function rejectionReason(presented: string | null, parsed: { secret: string } | null, found: AgentCredential | null): string | null {
  if (presented === null) return 'missing_credentials';
  if (parsed === null) return 'malformed_token';
  if (!found) return 'unknown_token';
  if (!verifySecret(parsed.secret, found.token.secretHash)) return 'invalid_secret';
  if (found.token.expiresAt && found.token.expiresAt.getTime() <= Date.now()) return 'expired_token';
  return null;
}

export default fp<{ config: Config }>(
  async (app, { config }) => {
    // How often one instance records that an agent was seen: often enough for the online/offline
    // status (a few writes per AGENT_OFFLINE_AFTER_S), never on every call.
    const seenIntervalMs = Math.min(15_000, (config.agentOfflineAfterS * 1000) / 4);
    const lastSeenWrite = new Map<string, number>();
    const credentials = agentCredentialLookup(app.db, { timeoutMs: config.databaseWaitTimeoutMs });

    app.decorateRequest('agentAuthCounted', false);

    app.decorate('limitAgentAuthAttempts', async (request: FastifyRequest) => {
      request.agentAuthCounted = true;
      await app.limiters.hit('agentAuth', request);
    });

    app.decorate('authenticateAgent', async (request: FastifyRequest) => {
      const presented = presentedToken(request);
      const parsed = presented === null ? null : parseToken(AGENT_TOKEN_PREFIX, presented);
      const found = parsed ? await credentials.call(parsed.publicId) : null;
      const reason = rejectionReason(presented, parsed, found);
      if (reason !== null || !found) {
        app.auditFailures.add({
          organizationId: found?.organization.id ?? null,
          action: 'agent.auth_failed',
          clientIp: request.ip,
          credentialId: parsed?.publicId ?? null,
          reason: reason ?? 'unknown_token',
          requestId: request.id,
        });
        request.log.warn({ public_id: parsed?.publicId ?? null, hint: presented ? tokenHint(presented) : null, reason }, 'agent authentication failed');
        app.metrics.agentAuthFailed(reason ?? 'unknown_token');
        // Failed attempts on any agent route count against the per-IP limit (once per request).
        if (!request.agentAuthCounted) await app.limiters.hit('agentAuth', request);
        throw new AppError('unauthorized', { detail: 'A valid agent token is required', headers: CHALLENGE });
      }
      if (found.agent.disabled) {
        throw new AppError('agent_disabled', { detail: 'This agent is disabled by its operators' });
      }
      request.principal = {
        type: 'agent',
        organizationId: found.organization.id,
        organizationName: found.organization.name,
        agentId: found.agent.id,
        agentName: found.agent.name,
        tokenId: found.token.id,
      };
      await app.limiters.hit('agent', request);
      const now = Date.now();
      if (now - (lastSeenWrite.get(found.agent.id) ?? 0) >= seenIntervalMs) {
        lastSeenWrite.set(found.agent.id, now);
        if (lastSeenWrite.size > 100_000) lastSeenWrite.clear();
        markAgentSeen(app.db, found.organization.id, found.agent.id).catch((err: unknown) => request.log.warn({ err }, 'could not record agent activity'));
      }
    });

    recordRouteAuth(app, app.authenticateAgent, 'agentToken');
  },
  { name: 'agent-auth', dependencies: ['database', 'audit', 'rate-limit', 'metrics'] },
);
