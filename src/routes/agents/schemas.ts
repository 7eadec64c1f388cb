import { z } from 'zod';
import { agentStatus, type Agent } from '../../db/agents.js';
import { iso, isoOrNull, Name, NullableTimestamp, optionalBody, PageQueryShape, Timestamp } from '../common.js';

export const AGENT_STATUSES = ['pending', 'online', 'offline', 'disabled'] as const;

const Description = z.string().trim().max(2000);

const MAX_METADATA_DEPTH = 16;

/**
 * Whether `test` holds for every value inside `value` (itself included), given its nesting depth.
 * Walked with a stack, not recursion: a body of thousands of nested brackets parses, and must be
 * refused, not overflow.
 */
function everyValue(value: unknown, test: (item: unknown, depth: number) => boolean): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (!test(item, depth)) return false;
    if (item !== null && typeof item === 'object') for (const inner of Object.values(item)) stack.push([inner, depth + 1]);
  }
  return true;
}

/** Whether `value` nests objects and arrays at most `max` levels deep. */
export const nestsAtMost = (value: unknown, max: number): boolean => everyValue(value, (item, depth) => item === null || typeof item !== 'object' || depth < max);

/** Whether every number in `value` is finite: 1e400 parses as Infinity, which JSON stores as null. */
const finiteNumbers = (value: unknown): boolean => everyValue(value, (item) => typeof item !== 'number' || Number.isFinite(item));

/** Free-form operator data about an agent, bounded so it cannot be used as bulk storage. */
export const Metadata = z
  .record(z.string().min(1).max(100), z.unknown())
  .refine((value) => Object.keys(value).length <= 50, { error: 'must have at most 50 keys' })
  .refine((value) => nestsAtMost(value, MAX_METADATA_DEPTH), { error: `must nest at most ${MAX_METADATA_DEPTH} levels deep`, abort: true })
  .refine(finiteNumbers, { error: 'numbers must be finite (JSON has no Infinity)' })
  .refine((value) => JSON.stringify(value).length <= 16_384, { error: 'must be at most 16 KB as JSON' });

export const AgentSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()),
  status: z.enum(AGENT_STATUSES),
  last_seen_at: NullableTimestamp,
  status_detail: z.string().nullable(),
  version: z.string().nullable(),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const CreateAgentBody = z.strictObject({ name: Name, description: Description.optional(), metadata: Metadata.optional() });

export const UpdateAgentBody = z
  .strictObject({
    name: Name.optional(),
    description: Description.nullable().optional(),
    metadata: Metadata.optional(),
    disabled: z.boolean().optional().describe('true sets the status to disabled: the agent\'s token is refused with 403 agent_disabled'),
  })
  .refine((body) => Object.keys(body).length > 0, { error: 'must change at least one field' });

export const RotateTokenBody = optionalBody(
  z.strictObject({
    grace_seconds: z.number().int().min(0).max(3600).default(0).describe('How long the previous token keeps working (0 = stops at once)'),
  }),
);

export const ListAgentsQuery = z.strictObject({ ...PageQueryShape, status: z.enum(AGENT_STATUSES).optional() });

export const AgentResponse = z.object({ agent: AgentSchema });
export const AgentWithTokenResponse = z.object({ agent: AgentSchema, token: z.string().describe('The agent token. Shown only in this response') });

export function toAgentJson(agent: Agent, offlineAfterS: number) {
  return {
    id: agent.id,
    name: agent.name,
    description: agent.description,
    metadata: agent.metadata,
    status: agentStatus(agent, offlineAfterS),
    last_seen_at: isoOrNull(agent.lastSeenAt),
    status_detail: agent.statusDetail,
    version: agent.version,
    created_at: iso(agent.createdAt),
    updated_at: iso(agent.updatedAt),
  };
}
