import { z } from 'zod';
import type { GoogleConnection } from '../../db/oauth.js';
import { isoOrNull, NullableTimestamp } from '../common.js';

export const StartQuery = z.strictObject({
  redirect: z.enum(['true', 'false']).default('true').describe('false: answer 200 with the URL instead of a 302'),
});

export const StartResponse = z.object({
  authorization_url: z.string(),
  state: z.string(),
  expires_at: z.string(),
});

export const CallbackQuery = z.looseObject({
  code: z.string().max(4096).optional(),
  state: z.string().max(512).optional(),
  error: z.string().max(200).optional(),
});

export const GOOGLE_STATES = ['not_configured', 'not_connected', 'connected', 'expired', 'missing_scope', 'error'] as const;

export const OAuthStatusResponse = z.object({
  google: z.object({
    state: z.enum(GOOGLE_STATES),
    connected: z.boolean(),
    account_email: z.string().nullable(),
    scopes_granted: z.array(z.string()),
    missing_scopes: z.array(z.string()),
    updated_at: NullableTimestamp,
    last_refresh_at: NullableTimestamp,
    last_error: z.string().nullable(),
  }),
});

export function googleStatus(connection: GoogleConnection | null, configured: boolean, wanted: string[]) {
  const granted = connection?.scopes ?? [];
  // "openid" and "email" come back as userinfo scopes; only the API scopes are checked.
  const missing = connection ? wanted.filter((scope) => scope.startsWith('https://') && !granted.includes(scope)) : [];
  const state = !configured
    ? 'not_configured'
    : !connection
      ? 'not_connected'
      : connection.status === 'expired'
        ? 'expired'
        : connection.status === 'error'
          ? 'error'
          : missing.length > 0
            ? 'missing_scope'
            : 'connected';
  return {
    google: {
      state: state as (typeof GOOGLE_STATES)[number],
      connected: connection !== null && connection.status !== 'expired',
      account_email: connection?.accountEmail ?? null,
      scopes_granted: granted,
      missing_scopes: missing,
      updated_at: isoOrNull(connection?.updatedAt ?? null),
      last_refresh_at: isoOrNull(connection?.lastRefreshAt ?? null),
      last_error: connection?.lastError ?? null,
    },
  };
}
