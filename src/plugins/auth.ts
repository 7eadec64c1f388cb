// Authentication of operators: the platform admin token and organization API keys. Route plugins
// protect their area with `authenticateAll(app, 'apiKey')` (or a route with
// `onRequest: app.authenticateApiKey`) and writes with `preHandler: requireRole('admin')`. Either
// way the route's `config.auth` names the scheme, which is what the OpenAPI document declares.
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { AdminTokenError, adminTokenSource, type AdminTokenSource } from '../admin-token.js';
import type { Config } from '../config.js';
import { parseToken, safeEqual, tokenHint, verifySecret } from '../crypto/tokens.js';
import { API_KEY_PREFIX, findApiKeyByPublicId, touchApiKey, type ApiKey, type ApiKeyRole } from '../db/api-keys.js';
import { AppError } from '../errors.js';


export type Principal =
  | { type: 'platform_admin' }
  | {
      type: 'api_key';
      organizationId: string;
      organizationName: string;
      keyId: string;
      publicId: string;
      role: ApiKeyRole;
    }
  | {
      type: 'agent';
      organizationId: string;
      organizationName: string;
      agentId: string;
      agentName: string;
      tokenId: string;
    };

/** How a route authenticates its caller; webhook ingest verifies the sender's signature instead. */
export type AuthScheme = 'platformAdmin' | 'apiKey' | 'agentToken' | 'webhookSignature' | 'metricsToken';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scheme enforced on this route (unset: public). Set by the hooks below, read by the OpenAPI document. */
    auth?: AuthScheme;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    authenticateApiKey(request: FastifyRequest): Promise<void>;
    authenticatePlatformAdmin(request: FastifyRequest): Promise<void>;
  }
}

const CHALLENGE = { 'www-authenticate': 'Bearer realm="switchboard"' };

/** One answer for every bad credential, so a caller cannot tell a missing key from a revoked one. */
const unauthorized = () => new AppError('unauthorized', { detail: 'A valid API key is required', headers: CHALLENGE });

export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/** The organization of an API-key principal; routes behind authenticateApiKey always have one. */
export function organizationOf(request: FastifyRequest): string {
  return apiKeyOf(request).organizationId;
}

/** The API-key principal itself (its key id and organization); routes behind authenticateApiKey always have one. */
export function apiKeyOf(request: FastifyRequest): Extract<Principal, { type: 'api_key' }> {
  if (request.principal?.type !== 'api_key') throw unauthorized();
  return request.principal;
}

/** preHandler for routes that need a role; the role it requires is readable as `requiredRole`. */
export function requireRole(role: ApiKeyRole) {
  const check = async (request: FastifyRequest) => {
    const principal = request.principal;
    if (principal?.type !== 'api_key') throw unauthorized();
    if (role === 'admin' && principal.role !== 'admin') {
      throw new AppError('forbidden', { detail: 'This API key is read-only; an admin key is required' });
    }
  };
  return Object.assign(check, { requiredRole: role });
}

/** The role a route's preHandlers require, if any (for the OpenAPI document). */
export function requiredRoleOf(route: Pick<RouteOptions, 'preHandler'>): ApiKeyRole | null {
  const handlers = [route.preHandler ?? []].flat() as unknown[];
  for (const handler of handlers) {
    const role = (handler as { requiredRole?: ApiKeyRole }).requiredRole;
    if (role) return role;
  }
  return null;
}

/** Sets `config.auth` on routes that list `hook` in their own onRequest hooks. */
export function recordRouteAuth(app: FastifyInstance, hook: unknown, scheme: AuthScheme) {
  app.addHook('onRoute', (route) => {
    if ([route.onRequest ?? []].flat().includes(hook as never)) route.config = { ...route.config, auth: scheme };
  });
}

/**
 * Every route `app` registers from here on requires `scheme`: one onRequest hook enforces it and
 * each route's `config.auth` records it.
 */
export function authenticateAll(app: FastifyInstance, scheme: 'platformAdmin' | 'apiKey' | 'agentToken') {
  const hook = { platformAdmin: app.authenticatePlatformAdmin, apiKey: app.authenticateApiKey, agentToken: app.authenticateAgent }[scheme];
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, auth: scheme };
  });
  app.addHook('onRequest', hook);
}

function rejectionReason(presented: string | null, parsed: { secret: string } | null, key: ApiKey | undefined): string | null {
  if (presented === null) return 'missing_credentials';
  if (parsed === null) return 'malformed_key';
  if (!key) return 'unknown_key';
  if (!verifySecret(parsed.secret, key.secretHash)) return 'invalid_secret';
  if (key.revokedAt) return 'revoked_key';
  if (key.expiresAt && key.expiresAt.getTime() <= Date.now()) return 'expired_key';
  return null;
}

/** How often one instance writes a key's last_used_at (the SQL also skips writes within a minute). */
const TOUCH_INTERVAL_MS = 60_000;

/**
 * The platform admin token's source, checked once: a file that is missing or too short at start-up
 * is a configuration error. buildApp calls this before it opens the database, so it fails fast.
 */
export async function checkedAdminToken(config: Config): Promise<AdminTokenSource> {
  const adminToken = adminTokenSource({ token: config.adminToken, file: config.adminTokenFile });
  try {
    await adminToken.current();
  } catch (err) {
    throw err instanceof AdminTokenError ? err : new AdminTokenError(String(err));
  }
  return adminToken;
}

export default fp<{ adminToken: AdminTokenSource }>(
  async (app, { adminToken }) => {
    const lastTouched = new Map<string, number>();

    app.decorateRequest('principal', null);

    app.decorate('authenticatePlatformAdmin', async (request: FastifyRequest) => {
      let expected: string | null;
      try {
        expected = await adminToken.current();
      } catch (err) {
        request.log.error({ err }, 'platform admin token unavailable');
        throw new AppError('admin_not_configured', { detail: 'The platform admin token file cannot be used; see the server log' });
      }
      if (expected === null) {
        throw new AppError('admin_not_configured', { detail: 'Set ADMIN_TOKEN or ADMIN_TOKEN_FILE to use the platform admin API' });
      }
      const presented = bearerToken(request);
      if (presented === null || !safeEqual(presented, expected)) {
        const reason = presented === null ? 'missing_credentials' : 'invalid_admin_token';
        app.auditFailures.add({
          organizationId: null,
          action: 'auth.failed',
          clientIp: request.ip,
          credentialId: null,
          reason,
          requestId: request.id,
        });
        app.metrics.adminAuthFailed(reason);
        request.log.warn({ hint: presented ? tokenHint(presented) : null }, 'platform admin authentication failed');
        throw new AppError('unauthorized', { detail: 'The platform admin token is required', headers: CHALLENGE });
      }
      request.principal = { type: 'platform_admin' };
    });

    app.decorate('authenticateApiKey', async (request: FastifyRequest) => {
      const presented = bearerToken(request);
      const parsed = presented === null ? null : parseToken(API_KEY_PREFIX, presented);
      const found = parsed ? await findApiKeyByPublicId(app.db, parsed.publicId) : null;
      const key = found?.key;
      const reason = rejectionReason(presented, parsed, key);
      if (reason !== null || !found || !key) {
        app.auditFailures.add({
          // Attempts on a real key id show up in that organization's audit log; others in the platform's.
          organizationId: found?.organization.id ?? null,
          action: 'auth.failed',
          clientIp: request.ip,
          credentialId: parsed?.publicId ?? null,
          reason: reason ?? 'unknown_key',
          requestId: request.id,
        });
        request.log.warn({ key_id: parsed?.publicId ?? null, hint: presented ? tokenHint(presented) : null, reason }, 'API key authentication failed');
        app.metrics.apiKeyAuthFailed(reason ?? 'unknown_key');
        throw unauthorized();
      }
      request.principal = {
        type: 'api_key',
        organizationId: found.organization.id,
        organizationName: found.organization.name,
        keyId: key.id,
        publicId: key.publicId,
        role: key.role,
      };
      const now = Date.now();
      if (now - (lastTouched.get(key.id) ?? 0) >= TOUCH_INTERVAL_MS) {
        lastTouched.set(key.id, now);
        if (lastTouched.size > 10_000) lastTouched.clear();
        touchApiKey(app.db, key.id).catch((err: unknown) => request.log.warn({ err }, 'could not record API key use'));
      }
    });

    recordRouteAuth(app, app.authenticatePlatformAdmin, 'platformAdmin');
    recordRouteAuth(app, app.authenticateApiKey, 'apiKey');
  },
  { name: 'auth', dependencies: ['database', 'audit', 'metrics'] },
);
