// The caller's own organization (the tenant of its API key).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { getOrganization } from '../../db/organizations.js';
import { organizationSignals } from '../../diagnostics/status.js';
import { AppError } from '../../errors.js';
import { authenticateAll, organizationOf } from '../../plugins/auth.js';
import { googleStatus } from '../oauth/schemas.js';
import { OrganizationResponse, toOrganizationJson } from '../organizations/schemas.js';
import { OrganizationStatusResponse } from '../status/schemas.js';

const organization: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'apiKey');

  // The organization the presented API key belongs to.
  app.get('/', { schema: { summary: 'The API key\'s own organization', problems: ['not_found'], response: { 200: OrganizationResponse } } }, async (request) => {
    const found = await getOrganization(app.db, organizationOf(request));
    if (!found) throw new AppError('not_found', { detail: 'No such organization' });
    return { organization: toOrganizationJson(found) };
  });

  // The organization's own operational signals: delivery backlog, agents, Google connection,
  // failures in the last hour. Reading it changes nothing, so read-only keys may. Every section
  // is bounded by READINESS_TIMEOUT_MS: one not read in time is null, with a warning.
  app.get('/status', { schema: { summary: "The organization's own operational signals", response: { 200: OrganizationStatusResponse } } }, async (request) => {
    const organizationId = organizationOf(request);
    const signals = await organizationSignals(app.database, app.config, organizationId);
    const google = signals.google && googleStatus(signals.google.connection, app.config.google !== null, app.config.googleScopes).google;
    const warnings = [...signals.warnings];
    if (google && (google.state === 'expired' || google.state === 'error')) {
      warnings.push({ code: 'oauth_reconnect_required', message: `the Google connection is ${google.state}: an admin must reconnect it` });
    }
    return {
      health: { ok: warnings.length === 0, warnings },
      organization_id: organizationId,
      generated_at: new Date().toISOString(),
      deliveries: signals.deliveries,
      agents: signals.agents,
      google_oauth: google,
      last_hour: signals.last_hour,
      audit_chain: signals.audit_chain,
    };
  });
};

export default organization;
