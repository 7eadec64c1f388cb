// Platform admin: create, list, inspect and delete organizations (tenants).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { recordAuditEvents } from '../../db/audit-events.js';
import { deleteOrganization, getOrganization, listOrganizations } from '../../db/organizations.js';
import { provisionOrganization, SlugTakenError } from '../../db/provisioning.js';
import { AppError } from '../../errors.js';
import { actorOf, auditEvent } from '../../plugins/audit.js';
import { authenticateAll } from '../../plugins/auth.js';
import { toApiKeyJson } from '../api-keys/schemas.js';
import { IdParams, listOf, NoContent, PageQuery, toPage } from '../common.js';
import {
  CreateOrganizationBody,
  CreateOrganizationResponse,
  OrganizationResponse,
  OrganizationSchema,
  toOrganizationJson,
} from './schemas.js';

const notFound = () => new AppError('not_found', { detail: 'No such organization' });

const organizations: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'platformAdmin');

  // Create an organization and its first admin API key (shown once).
  app.post(
    '/',
    {
      schema: {
        summary: 'Create an organization and its first admin API key',
        problems: ['slug_taken'],
        body: CreateOrganizationBody,
        response: { 201: CreateOrganizationResponse },
      },
    },
    async (request, reply) => {
      try {
        const { organization, key, token } = await provisionOrganization(app.db, request.body, actorOf(request));
        reply.status(201);
        return { organization: toOrganizationJson(organization), api_key: { ...toApiKeyJson(key), key: token } };
      } catch (err) {
        if (err instanceof SlugTakenError) throw new AppError('slug_taken', { detail: err.message });
        throw err;
      }
    },
  );

  // List organizations, newest first.
  app.get('/', { schema: { summary: 'List organizations', querystring: PageQuery, response: { 200: listOf(OrganizationSchema) } } }, async (request) => {
    const page = await listOrganizations(app.db, toPage(request.query));
    return { data: page.data.map(toOrganizationJson), next_cursor: page.nextCursor };
  });

  // One organization.
  app.get('/:id', { schema: { summary: 'Get an organization', params: IdParams, response: { 200: OrganizationResponse } } }, async (request) => {
    const organization = await getOrganization(app.db, request.params.id);
    if (!organization) throw notFound();
    return { organization: toOrganizationJson(organization) };
  });

  // Delete an organization and everything it owns.
  app.delete('/:id', { schema: { summary: 'Delete an organization and everything it owns', params: IdParams, response: { 204: NoContent } } }, async (request, reply) => {
    const { id } = request.params;
    await app.db.transaction(async (tx) => {
      const organization = await getOrganization(tx, id);
      if (!organization || !(await deleteOrganization(tx, id))) throw notFound();
      await recordAuditEvents(tx, [
        auditEvent(request, { action: 'organization.deleted', targetType: 'organization', targetId: id, details: { name: organization.name, slug: organization.slug } }, null),
      ]);
    });
    return reply.status(204).send();
  });
};

export default organizations;
