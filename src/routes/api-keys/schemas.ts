import { z } from 'zod';
import { API_KEY_PREFIX, type ApiKey } from '../../db/api-keys.js';
import { InputTimestamp, iso, isoOrNull, Name, NullableTimestamp, Timestamp } from '../common.js';

export const ApiKeySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  role: z.enum(['admin', 'read_only']),
  prefix: z.string().describe('The public part of the key, to recognize it; not a credential'),
  status: z.enum(['active', 'expired', 'revoked']),
  created_at: Timestamp,
  expires_at: NullableTimestamp,
  revoked_at: NullableTimestamp,
  last_used_at: NullableTimestamp.describe('Updated at most about once a minute'),
});

export const CreatedApiKeySchema = ApiKeySchema.extend({
  key: z.string().describe('The API key. Shown only in this response: store it now'),
});

export const CreateApiKeyBody = z.strictObject({
  name: Name,
  role: z.enum(['admin', 'read_only']),
  expires_at: InputTimestamp.optional().refine((value) => value === undefined || Date.parse(value) > Date.now(), {
    error: 'must be in the future',
  }),
});

export const ApiKeyResponse = z.object({ api_key: ApiKeySchema });
export const CreatedApiKeyResponse = z.object({ api_key: CreatedApiKeySchema });

export function toApiKeyJson(key: ApiKey) {
  const status = key.revokedAt ? 'revoked' : key.expiresAt && key.expiresAt.getTime() <= Date.now() ? 'expired' : 'active';
  return {
    id: key.id,
    name: key.name,
    role: key.role,
    prefix: `${API_KEY_PREFIX}_${key.publicId}`,
    status: status as 'active' | 'expired' | 'revoked',
    created_at: iso(key.createdAt),
    expires_at: isoOrNull(key.expiresAt),
    revoked_at: isoOrNull(key.revokedAt),
    last_used_at: isoOrNull(key.lastUsedAt),
  };
}
