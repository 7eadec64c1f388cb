// Connecting an organization's Google account: start (admin key) → Google consent → callback
// (browser, no key) → status; and disconnect. Tokens are stored encrypted; nobody reads them back.
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { recordAuditEvents, auditRow } from '../../db/audit-events.js';
import { uuidv7 } from '../../db/ids.js';
import {
  accessTokenAad,
  consumeOAuthState,
  createOAuthState,
  deleteGoogleConnection,
  getGoogleConnection,
  lockUsableKey,
  refreshTokenAad,
  saveGoogleConnection,
  verifierAad,
} from '../../db/oauth.js';
import { inOrganization } from '../../db/organizations.js';
import { KeyringError } from '../../crypto/keyring.js';
import { AppError, PROBLEMS, type ProblemCode } from '../../errors.js';
import { GoogleGrantError, GoogleOAuth } from '../../google/oauth-client.js';
import { apiKeyOf, organizationOf, requireRole } from '../../plugins/auth.js';
import { auditEvent } from '../../plugins/audit.js';
import { NoContent } from '../common.js';
import { CallbackQuery, googleStatus, OAuthStatusResponse, StartQuery, StartResponse } from './schemas.js';

const STATE_TTL_S = 600;

const hashState = (state: string) => createHash('sha256').update(state).digest('hex');

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The browser lands on the callback: answer with a small self-contained page. */
function page(reply: FastifyReply, status: number, title: string, message: string, code?: ProblemCode) {
  if (code) reply.header('x-error-code', code);
  return reply
    .status(status)
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
        `<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${code ? `<p>Error code: <code>${code}</code></p>` : ''}</body></html>`,
    );
}

/** The page for a callback that did not connect the account: the route's own problems and any other. */
const failurePage = (reply: FastifyReply, code: ProblemCode, message: string, status: number = PROBLEMS[code].status) =>
  page(reply, status, 'Google account not connected', message, code);

const oauth: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  const config = app.config;
  const google = config.google ? new GoogleOAuth(config.google, config.googleScopes) : null;
  const requireGoogle = () => {
    if (!google) throw new AppError('oauth_not_configured', { detail: 'Set GOOGLE_OAUTH_CLIENT_ID, GOOGLE_OAUTH_CLIENT_SECRET and GOOGLE_OAUTH_REDIRECT_URI' });
    return google;
  };

  // Begin connecting the organization's Google account (consent page, PKCE, single-use state).
  app.get(
    '/google/start',
    {
      // A HEAD (a link checker, a prefetch) must not create a state.
      exposeHeadRoute: false,
      onRequest: app.authenticateApiKey,
      preHandler: requireRole('admin'),
      schema: {
        summary: 'Start connecting the organization\'s Google account',
        description: 'Answers 302 to Google\'s consent page; with ?redirect=false, 200 with the URL instead.',
        problems: ['oauth_not_configured'],
        querystring: StartQuery,
        response: { 200: StartResponse },
      },
    },
    async (request, reply) => {
      const client = requireGoogle();
      const { organizationId, keyId } = apiKeyOf(request);
      const state = randomBytes(32).toString('base64url');
      const stateHash = hashState(state);
      const { codeVerifier, codeChallenge } = await client.pkce();
      const stored = await createOAuthState(app.db, organizationId, {
        stateHash,
        apiKeyId: keyId,
        codeVerifierCiphertext: app.keyring.encrypt(codeVerifier, verifierAad(stateHash)),
        ttlSeconds: STATE_TTL_S,
      });
      const url = client.authorizationUrl(state, codeChallenge);
      if (request.query.redirect === 'false') return { authorization_url: url, state, expires_at: stored.expiresAt.toISOString() };
      return reply.redirect(url, 302);
    },
  );

  // Google sends the browser back here with ?code&state (or ?error).
  app.get(
    '/google/callback',
    {
      // A HEAD (a mail scanner following the link) must not consume the state the browser needs.
      exposeHeadRoute: false,
      schema: {
        summary: 'Google\'s redirect back after consent (browser page)',
        description: 'Answers an HTML page (or 302 to OAUTH_SUCCESS_REDIRECT_URL); failures carry their code in X-Error-Code.',
        produces: ['text/html'],
        problems: ['oauth_not_configured', 'access_denied', 'invalid_state', 'no_refresh_token', 'token_exchange_failed', 'encryption_key_unavailable', 'unavailable'],
        querystring: CallbackQuery,
      },
      // Whatever fails (validation, an outage, the request deadline), the browser gets the page.
      config: { renderProblem: (reply, problem) => failurePage(reply, problem.code, problem.detail, problem.status) },
    },
    async (request, reply) => {
      const fail = (code: ProblemCode, message: string) => failurePage(reply, code, message);
      if (!google) return fail('oauth_not_configured', 'Google OAuth is not configured on this server.');
      const { code, state, error } = request.query;
      const consumed = state ? await consumeOAuthState(app.db, hashState(state)) : null;
      if (error) return fail('access_denied', 'The consent was declined. Start again from Switchboard to connect.');
      if (!consumed || consumed.expiresAt.getTime() <= Date.now()) {
        return fail('invalid_state', 'This link is unknown, expired or already used. Start again from Switchboard.');
      }
      // The key that started it was revoked, expired or demoted since: its authority ended with it.
      if (!consumed.keyUsable) return fail('invalid_state', 'The API key that started this connection is no longer valid. Start again from Switchboard.');
      if (!code) return fail('invalid_state', 'Google did not return an authorization code.');
      const organizationId = consumed.organizationId;
      const actor = { actorType: 'api_key' as const, actorId: consumed.apiKeyId, clientIp: request.ip, requestId: request.id };
      // A verifier that does not decrypt is a key problem (503 encryption_key_unavailable), not Google's.
      const codeVerifier = app.keyring.decrypt(consumed.codeVerifierCiphertext, verifierAad(consumed.stateHash));
      let tokens;
      try {
        tokens = await google.exchange(code, codeVerifier);
      } catch (err) {
        request.log.warn({ reason: err instanceof GoogleGrantError ? err.message : 'error' }, 'Google token exchange failed');
        await recordAuditEvents(app.db, [auditRow(actor, organizationId, { action: 'oauth.connect_failed', outcome: 'failure', targetType: 'google_connection', details: { reason: 'token_exchange_failed' } })]);
        return fail('token_exchange_failed', 'Google refused the authorization. Start again from Switchboard.');
      }
      if (!tokens.refreshToken) {
        await recordAuditEvents(app.db, [auditRow(actor, organizationId, { action: 'oauth.connect_failed', outcome: 'failure', targetType: 'google_connection', details: { reason: 'no_refresh_token' } })]);
        return fail('no_refresh_token', 'Google returned no refresh token. Remove Switchboard from your Google account permissions and connect again.');
      }
      // One connection saved at a time per organization: two callbacks at once (two consents
      // completed together) would otherwise both create the row under ids of their own.
      const connection = await inOrganization(
        app.db,
        organizationId,
        async (tx) => {
          // Checked again, locked: the key may have been revoked while Google answered.
          if (!(await lockUsableKey(tx, organizationId, consumed.apiKeyId))) return null;
          const existing = await getGoogleConnection(tx, organizationId, { forUpdate: true });
          const id = existing?.id ?? uuidv7();
          const saved = await saveGoogleConnection(tx, organizationId, id, {
            accountEmail: tokens.email,
            refreshTokenCiphertext: app.keyring.encrypt(tokens.refreshToken!, refreshTokenAad(organizationId, id)),
            accessTokenCiphertext: app.keyring.encrypt(tokens.accessToken, accessTokenAad(organizationId, id)),
            accessTokenExpiresAt: tokens.expiresAt,
            scopes: tokens.scopes,
          });
          await recordAuditEvents(tx, [
            auditRow(actor, organizationId, {
              action: existing ? 'oauth.reconnected' : 'oauth.connected',
              targetType: 'google_connection',
              targetId: saved.id,
              details: { account_email: tokens.email, scopes: tokens.scopes },
            }),
          ]);
          return saved;
        },
        { exclusive: true },
      );
      if (!connection) {
        // Nothing was stored; the grant Google just made is given back (best effort).
        await google.revoke(tokens.refreshToken);
        return fail('invalid_state', 'The API key that started this connection is no longer valid. Start again from Switchboard.');
      }
      if (config.oauthSuccessRedirectUrl) return reply.redirect(config.oauthSuccessRedirectUrl, 302);
      return page(reply, 200, 'Google account connected', `Switchboard can now act as ${connection.accountEmail ?? 'the connected account'}. You can close this page.`);
    },
  );

  // The organization's Google connection, as of the last refresh (does not call Google).
  app.get('/status', { onRequest: app.authenticateApiKey, schema: { summary: 'The organization\'s Google connection status', response: { 200: OAuthStatusResponse } } }, async (request) => {
    const connection = await getGoogleConnection(app.db, organizationOf(request));
    return googleStatus(connection, google !== null, config.googleScopes);
  });

  // Disconnect: revoke at Google (best effort, recorded) and delete the stored credentials.
  app.delete(
    '/google',
    {
      onRequest: app.authenticateApiKey,
      preHandler: requireRole('admin'),
      schema: { summary: 'Disconnect the Google account', problems: ['not_found'], response: { 204: NoContent } },
    },
    async (request, reply) => {
      const organizationId = organizationOf(request);
      // One at a time with callbacks: the connection revoked at Google is the one deleted, never
      // one a reconnect saved meanwhile. Google's answer is waited for at most GOOGLE_OAUTH_TIMEOUT_MS.
      await inOrganization(
        app.db,
        organizationId,
        async (tx) => {
          const connection = await getGoogleConnection(tx, organizationId, { forUpdate: true });
          if (!connection) throw new AppError('not_found', { detail: 'No Google account is connected' });
          // A token this instance cannot decrypt cannot be revoked, but the disconnect still
          // deletes it: no instance brokers it again (the audit event says it was not revoked).
          let refreshToken: string | null = null;
          try {
            refreshToken = app.keyring.decrypt(connection.refreshTokenCiphertext, refreshTokenAad(organizationId, connection.id));
          } catch (error) {
            if (!(error instanceof KeyringError)) throw error;
          }
          const revoked = google && refreshToken !== null ? await google.revoke(refreshToken) : false;
          await deleteGoogleConnection(tx, organizationId);
          const details = refreshToken === null ? { revoked_at_google: false, refresh_token_decrypted: false } : { revoked_at_google: revoked };
          await recordAuditEvents(tx, [auditEvent(request, { action: 'oauth.disconnected', targetType: 'google_connection', targetId: connection.id, details })]);
        },
        { exclusive: true },
      );
      return reply.status(204).send();
    },
  );
};

export default oauth;
