// Organization API keys: create (shown once), list (never key material), revoke.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { issueToken } from '../../crypto/tokens.js';
import { API_KEY_PREFIX, createApiKey, getApiKey, listApiKeys, revokeApiKey } from '../../db/api-keys.js';
import { recordAuditEvents } from '../../db/audit-events.js';
import { deleteOAuthStatesOfKey } from '../../db/oauth.js';
import { inOrganization } from '../../db/organizations.js';
import { AppError } from '../../errors.js';
import { authenticateAll, organizationOf, requireRole } from '../../plugins/auth.js';
import { auditEvent } from '../../plugins/audit.js';
import { IdParams, listOf, NoContent, PageQuery, toPage } from '../common.js';
import { ApiKeyResponse, ApiKeySchema, CreateApiKeyBody, CreatedApiKeyResponse, toApiKeyJson } from './schemas.js';

const apiKeys: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'apiKey');

  // Create an API key; the key itself is in this response only.
  app.post(
    '/',
    { preHandler: requireRole('admin'), schema: { summary: 'Create an API key (the key is shown once)', body: CreateApiKeyBody, response: { 201: CreatedApiKeyResponse } } },
    async (request, reply) => {
      const organizationId = organizationOf(request);
      const { name, role, expires_at } = request.body;
      const issued = issueToken(API_KEY_PREFIX);
      const key = await inOrganization(app.db, organizationId, async (tx) => {
        const created = await createApiKey(tx, organizationId, {
          publicId: issued.publicId,
          secretHash: issued.secretHash,
          name,
          role,
          expiresAt: expires_at ? new Date(expires_at) : null,
          createdByKeyId: request.principal?.type === 'api_key' ? request.principal.keyId : null,
        });
        await recordAuditEvents(tx, [
          auditEvent(request, { action: 'api_key.created', targetType: 'api_key', targetId: created.id, details: { role, name, expires_at: expires_at ?? null } }),
        ]);
        return created;
      });
      reply.status(201);
      return { api_key: { ...toApiKeyJson(key), key: issued.token } };
    },
  );

  // List the organization's keys, including revoked and expired ones.
  app.get('/', { schema: { summary: 'List API keys', querystring: PageQuery, response: { 200: listOf(ApiKeySchema) } } }, async (request) => {
    const page = await listApiKeys(app.db, organizationOf(request), toPage(request.query));
    return { data: page.data.map(toApiKeyJson), next_cursor: page.nextCursor };
  });

  // One key's metadata.
  app.get('/:id', { schema: { summary: 'Get an API key\'s metadata', params: IdParams, response: { 200: ApiKeyResponse } } }, async (request) => {
    const key = await getApiKey(app.db, organizationOf(request), request.params.id);
    if (!key) throw new AppError('not_found', { detail: 'No such API key' });
    return { api_key: toApiKeyJson(key) };
  });

  // Revoke a key: it is refused from the next request on, on every instance.
  app.delete('/:id', { preHandler: requireRole('admin'), schema: { summary: 'Revoke an API key', params: IdParams, response: { 204: NoContent } } }, async (request, reply) => {
    const organizationId = organizationOf(request);
    await inOrganization(app.db, organizationId, async (tx) => {
      const key = await revokeApiKey(tx, organizationId, request.params.id);
      if (!key) throw new AppError('not_found', { detail: 'No such API key' });
      await deleteOAuthStatesOfKey(tx, organizationId, key.id);
      await recordAuditEvents(tx, [
        auditEvent(request, { action: 'api_key.revoked', targetType: 'api_key', targetId: key.id, details: { prefix: `${API_KEY_PREFIX}_${key.publicId}` } }),
      ]);
    });
    return reply.status(204).send();
  });
};

export default apiKeys;
