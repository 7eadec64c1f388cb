// Agents and their tokens. Tokens are found by public id (one indexed query) and stored hashed.
import { and, desc, eq, gt, isNotNull, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import { createBatcher, type Batcher, type BatchTuning } from './batching.js';
import type { DbOrTx } from './client.js';
import { afterCursor, toPage, type Page } from './pagination.js';
import { agents, agentTokens, organizations } from './schema.js';

export type Agent = typeof agents.$inferSelect;
export type AgentToken = typeof agentTokens.$inferSelect;
export type AgentStatus = 'pending' | 'online' | 'offline' | 'disabled';

export const AGENT_TOKEN_PREFIX = 'sba';

export function agentStatus(agent: Pick<Agent, 'disabled' | 'lastSeenAt'>, offlineAfterS: number, now = Date.now()): AgentStatus {
  if (agent.disabled) return 'disabled';
  if (!agent.lastSeenAt) return 'pending';
  return now - agent.lastSeenAt.getTime() < offlineAfterS * 1000 ? 'online' : 'offline';
}

function statusCondition(status: AgentStatus, offlineAfterS: number): SQL | undefined {
  const cutoff = sql`now() - make_interval(secs => ${offlineAfterS})`;
  switch (status) {
    case 'disabled':
      return eq(agents.disabled, true);
    case 'pending':
      return and(eq(agents.disabled, false), isNull(agents.lastSeenAt));
    case 'online':
      return and(eq(agents.disabled, false), isNotNull(agents.lastSeenAt), gt(agents.lastSeenAt, cutoff));
    case 'offline':
      return and(eq(agents.disabled, false), lt(agents.lastSeenAt, cutoff));
  }
}

export interface NewAgent {
  name: string;
  description?: string | null | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export async function createAgent(db: DbOrTx, organizationId: string, input: NewAgent): Promise<Agent> {
  const rows = await db.insert(agents).values({ ...input, organizationId }).returning();
  return rows[0]!;
}

/** `forUpdate`: lock the row until the transaction ends (one token rotation at a time). */
export async function getAgent(db: DbOrTx, organizationId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<Agent | null> {
  const query = db
    .select()
    .from(agents)
    .where(and(eq(agents.organizationId, organizationId), eq(agents.id, id)))
    .limit(1);
  const rows = options.forUpdate ? await query.for('update') : await query;
  return rows[0] ?? null;
}

export async function listAgents(db: DbOrTx, organizationId: string, filter: { status?: AgentStatus | undefined }, offlineAfterS: number, page: Page) {
  const rows = await db
    .select()
    .from(agents)
    .where(
      and(
        eq(agents.organizationId, organizationId),
        afterCursor(agents.id, page),
        filter.status ? statusCondition(filter.status, offlineAfterS) : undefined,
      ),
    )
    .orderBy(desc(agents.id))
    .limit(page.limit + 1);
  return toPage(rows, page);
}

export interface AgentChanges {
  name?: string | undefined;
  description?: string | null | undefined;
  metadata?: Record<string, unknown> | undefined;
  disabled?: boolean | undefined;
}

export async function updateAgent(db: DbOrTx, organizationId: string, id: string, changes: AgentChanges): Promise<Agent | null> {
  const rows = await db
    .update(agents)
    .set({ ...changes, updatedAt: sql`now()` })
    .where(and(eq(agents.organizationId, organizationId), eq(agents.id, id)))
    .returning();
  return rows[0] ?? null;
}

export async function deleteAgent(db: DbOrTx, organizationId: string, id: string): Promise<Agent | null> {
  const rows = await db
    .delete(agents)
    .where(and(eq(agents.organizationId, organizationId), eq(agents.id, id)))
    .returning();
  return rows[0] ?? null;
}

export async function addAgentToken(
  db: DbOrTx,
  organizationId: string,
  agentId: string,
  token: { publicId: string; secretHash: string },
): Promise<AgentToken> {
  const rows = await db.insert(agentTokens).values({ organizationId, agentId, ...token }).returning();
  return rows[0]!;
}

/**
 * Retires the agent's existing tokens: at once (grace 0: deleted) or at the end of the grace
 * period. A token already due to expire sooner keeps its earlier end.
 */
export async function retireAgentTokens(db: DbOrTx, organizationId: string, agentId: string, graceSeconds: number): Promise<void> {
  const scope = and(eq(agentTokens.organizationId, organizationId), eq(agentTokens.agentId, agentId));
  if (graceSeconds === 0) {
    await db.delete(agentTokens).where(scope);
    return;
  }
  const end = sql`now() + make_interval(secs => ${graceSeconds})`;
  await db
    .update(agentTokens)
    .set({ expiresAt: end })
    .where(and(scope, or(isNull(agentTokens.expiresAt), gt(agentTokens.expiresAt, end))));
}

export interface AgentCredential {
  token: AgentToken;
  agent: Agent;
  organization: { id: string; name: string };
}

/**
 * The one indexed query behind every agent authentication (not tenant-scoped: it finds the
 * tenant), for the hot path: concurrent authentications share one query
 * (see batching.ts). Every lookup still reads the database after the request arrived, so a
 * revoked or rotated token is refused at once, on every instance.
 */
export function agentCredentialLookup(db: DbOrTx, options: BatchTuning = {}): Batcher<string, AgentCredential | null> {
  // Prepared once: the SQL is built a single time and the batch's ids travel as one array parameter.
  const query = db
    .select({ token: agentTokens, agent: agents, organization: { id: organizations.id, name: organizations.name } })
    .from(agentTokens)
    .innerJoin(agents, eq(agents.id, agentTokens.agentId))
    .innerJoin(organizations, eq(organizations.id, agentTokens.organizationId))
    .where(sql`${agentTokens.publicId} = any(${sql.placeholder('publicIds')}::text[])`)
    .prepare('agent_credentials_by_public_ids');
  return createBatcher<string, AgentCredential | null>({
    maxBatch: 100,
    maxInFlight: 8,
    ...options,
    async run(publicIds) {
      const found = await query.execute({ publicIds: [...new Set(publicIds)] });
      const byId = new Map(found.map((credential) => [credential.token.publicId, credential]));
      return publicIds.map((publicId) => ({ ok: true, value: byId.get(publicId) ?? null }));
    },
  });
}

/** Records that the agent was seen; optional heartbeat fields are written when given. */
export async function markAgentSeen(
  db: DbOrTx,
  organizationId: string,
  agentId: string,
  details: { statusDetail?: string | undefined; version?: string | undefined } = {},
): Promise<Date | null> {
  const rows = await db
    .update(agents)
    .set({
      lastSeenAt: sql`now()`,
      ...(details.statusDetail !== undefined ? { statusDetail: details.statusDetail } : {}),
      ...(details.version !== undefined ? { version: details.version } : {}),
    })
    .where(and(eq(agents.organizationId, organizationId), eq(agents.id, agentId)))
    .returning({ lastSeenAt: agents.lastSeenAt });
  return rows[0]?.lastSeenAt ?? null;
}
