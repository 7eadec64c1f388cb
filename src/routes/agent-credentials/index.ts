// The access-token broker: agents get short-lived Google access tokens for their organization's
// connection and never see the refresh token. One refresh at a time per connection, across
// instances: the row is locked, and the expiry re-checked after the lock.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { auditRow, recordAuditEvents } from '../../db/audit-events.js';
import { accessTokenAad, getGoogleConnection, recordRefresh, refreshTokenAad, type GoogleConnection } from '../../db/oauth.js';
import { inOrganization } from '../../db/organizations.js';
import { AppError } from '../../errors.js';
import { GoogleGrantError, GoogleOAuth } from '../../google/oauth-client.js';
import { agentOf } from '../../plugins/agent-auth.js';
import { actorOf } from '../../plugins/audit.js';
import { authenticateAll } from '../../plugins/auth.js';

/** A cached token is handed out only while it has more than this left. */
const MIN_REMAINING_MS = 5 * 60_000;

const TokenResponse = z.object({
  access_token: z.string(),
  expires_at: z.string(),
  scopes: z.array(z.string()),
  account_email: z.string().nullable(),
});

type Outcome =
  | { kind: 'token'; token: string; expiresAt: Date; scopes: string[]; email: string | null; connectionId: string; refreshed: boolean }
  | { kind: 'error'; error: AppError };

const agentCredentials: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'agentToken');
  const google = app.config.google ? new GoogleOAuth(app.config.google, app.config.googleScopes) : null;

  /** The connection's stored access token, if it has more than MIN_REMAINING_MS left. */
  const usableToken = (connection: GoogleConnection): Outcome | null => {
    if (connection.status === 'expired' || !connection.accessTokenCiphertext || !connection.accessTokenExpiresAt) return null;
    if (connection.accessTokenExpiresAt.getTime() - Date.now() <= MIN_REMAINING_MS) return null;
    const token = app.keyring.decrypt(connection.accessTokenCiphertext, accessTokenAad(connection.organizationId, connection.id));
    return { kind: 'token', token, expiresAt: connection.accessTokenExpiresAt, refreshed: false, scopes: connection.scopes, email: connection.accountEmail, connectionId: connection.id };
  };

  /**
   * Refreshes under the row's lock, once per organization at a time in this process: concurrent
   * requests share the one in flight, so an organization's agents hold at most one database
   * connection per instance while Google answers (other instances wait on the row lock), and a
   * slow Google cannot take the pool from other tenants. Google gets GOOGLE_OAUTH_TIMEOUT_MS at most.
   */
  const refreshing = new Map<string, Promise<Outcome>>();
  const refreshOnce = async (request: FastifyRequest, organizationId: string): Promise<Outcome> => {
    const running = refreshing.get(organizationId);
    if (running) {
      const shared = await running;
      return shared.kind === 'token' ? { ...shared, refreshed: false } : shared;
    }
    const started = lockedRefresh(request, organizationId).finally(() => refreshing.delete(organizationId));
    refreshing.set(organizationId, started);
    return started;
  };

  const lockedRefresh = (request: FastifyRequest, organizationId: string) =>
    inOrganization(app.db, organizationId, async (tx): Promise<Outcome> => {
      const connection = await getGoogleConnection(tx, organizationId, { forUpdate: true });
      if (!connection) return { kind: 'error', error: new AppError('oauth_not_connected', { detail: 'Connect a Google account first (GET /api/v1/oauth/google/start)' }) };
      if (connection.status === 'expired') {
        return { kind: 'error', error: new AppError('reconnect_required', { detail: 'Google no longer accepts this connection; an operator must reconnect it' }) };
      }
      // Refreshed by another instance while this one waited for the lock.
      const cached = usableToken(connection);
      if (cached) return cached;
      // A refresh token that does not decrypt is a key problem (503 encryption_key_unavailable), not Google's.
      const refreshToken = app.keyring.decrypt(connection.refreshTokenCiphertext, refreshTokenAad(organizationId, connection.id));
      try {
        const refreshed = await google!.refresh(refreshToken);
        await recordRefresh(tx, organizationId, {
          ok: true,
          accessTokenCiphertext: app.keyring.encrypt(refreshed.accessToken, accessTokenAad(organizationId, connection.id)),
          accessTokenExpiresAt: refreshed.expiresAt,
          scopes: refreshed.scopes,
        });
        app.metrics.oauthRefreshSucceeded();
        const base = { email: connection.accountEmail, connectionId: connection.id };
        return { kind: 'token', token: refreshed.accessToken, expiresAt: refreshed.expiresAt, refreshed: true, ...base, scopes: refreshed.scopes ?? connection.scopes };
      } catch (err) {
        const grant = err instanceof GoogleGrantError;
        request.log.warn({ reason: (err as Error).message, connection_id: connection.id }, 'Google token refresh failed');
        // invalid_grant: the refresh token is dead, mark the connection; otherwise leave it intact.
        app.metrics.oauthRefreshFailed(grant ? 'invalid_grant' : 'unavailable');
        await recordRefresh(tx, organizationId, { ok: false, status: grant ? 'expired' : 'connected', error: grant ? `refresh refused: ${(err as Error).message}` : 'Google unavailable' });
        await recordAuditEvents(tx, [
          auditRow(actorOf(request), organizationId, { action: 'oauth.refresh_failed', outcome: 'failure', targetType: 'google_connection', targetId: connection.id, details: { reason: grant ? 'invalid_grant' : 'unavailable' } }),
        ]);
        return {
          kind: 'error',
          error: grant
            ? new AppError('reconnect_required', { detail: 'Google no longer accepts this connection; an operator must reconnect it' })
            : new AppError('token_refresh_failed', { detail: 'Google did not issue a token; retry later', headers: { 'retry-after': '5' } }),
        };
      }
    });

  // A Google access token for the agent's organization.
  app.post(
    '/google/token',
    {
      schema: {
        summary: 'A short-lived Google access token for the agent\'s organization',
        problems: ['oauth_not_configured', 'oauth_not_connected', 'reconnect_required', 'token_refresh_failed', 'encryption_key_unavailable'],
        response: { 200: TokenResponse },
      },
    },
    async (request) => {
      if (!google) throw new AppError('oauth_not_configured', { detail: 'Google OAuth is not configured on this server' });
      const agent = agentOf(request);
      const organizationId = agent.organizationId;
      // A token with time left is handed out from a plain read; only a refresh locks the row.
      const current = await getGoogleConnection(app.db, organizationId);
      const outcome = (current && usableToken(current)) ?? (await refreshOnce(request, organizationId));
      if (outcome.kind === 'error') throw outcome.error;
      await recordAuditEvents(app.db, [
        auditRow(actorOf(request), organizationId, {
          action: 'oauth.token_issued',
          targetType: 'google_connection',
          targetId: outcome.connectionId,
          details: { expires_at: outcome.expiresAt.toISOString(), refreshed: outcome.refreshed },
        }),
      ]);
      app.metrics.brokerIssued(outcome.refreshed ? 'refreshed' : 'cached');
      return { access_token: outcome.token, expires_at: outcome.expiresAt.toISOString(), scopes: outcome.scopes, account_email: outcome.email };
    },
  );
};

export default agentCredentials;
