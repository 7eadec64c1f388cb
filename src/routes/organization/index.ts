// The caller's own organization (the tenant of its API key).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { getOrganization } from '../../db/organizations.js';
import { AppError } from '../../errors.js';
import { authenticateAll, organizationOf } from '../../plugins/auth.js';
import { OrganizationResponse, toOrganizationJson } from '../organizations/schemas.js';

const organization: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'apiKey');

  // The organization the presented API key belongs to.
  app.get('/', { schema: { summary: 'The API key\'s own organization', problems: ['not_found'], response: { 200: OrganizationResponse } } }, async (request) => {
    const found = await getOrganization(app.db, organizationOf(request));
    if (!found) throw new AppError('not_found', { detail: 'No such organization' });
    return { organization: toOrganizationJson(found) };
  });
};

export default organization;
