// Operators manage webhook endpoints (secrets shown once, stored encrypted), inspect their
// deliveries and send them back to pending.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { generateWebhookSecret } from '../../crypto/signatures.js';
import { recordAuditEvents } from '../../db/audit-events.js';
import { getDelivery, listDeliveries, redeliver } from '../../db/deliveries.js';
import { uuidv7 } from '../../db/ids.js';
import {
  agentExists,
  createWebhook,
  deleteWebhook,
  getWebhook,
  listWebhooks,
  rotateWebhookSecret,
  secretAad,
  updateWebhook,
} from '../../db/webhooks.js';
import type { DbOrTx } from '../../db/client.js';
import { inOrganization } from '../../db/organizations.js';
import { AppError } from '../../errors.js';
import { authenticateAll, organizationOf, requireRole } from '../../plugins/auth.js';
import { auditEvent } from '../../plugins/audit.js';
import { IdParams, listOf, NoContent, PageQuery, toPage } from '../common.js';
import {
  CreateWebhookBody,
  DeliveryParams,
  DeliverySchema,
  DeliverySummarySchema,
  ListDeliveriesQuery,
  RotateSecretBody,
  toDeliveryJson,
  toDeliverySummaryJson,
  toWebhookJson,
  UpdateWebhookBody,
  WebhookResponse,
  WebhookSchema,
  WebhookWithSecretResponse,
} from './schemas.js';

const notFound = () => new AppError('not_found', { detail: 'No such webhook' });

async function checkAgent(db: DbOrTx, organizationId: string, agentId: string | null | undefined) {
  if (agentId && !(await agentExists(db, organizationId, agentId))) {
    throw new AppError('invalid_agent', { detail: 'agent_id is not an agent of this organization' });
  }
}

const webhooksRoutes: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  authenticateAll(instance, 'apiKey');
  const json = (webhook: Parameters<typeof toWebhookJson>[0]) => toWebhookJson(webhook, app.config.baseUrl);

  // Create an endpoint; the signing secret is in this response only.
  app.post(
    '/',
    {
      preHandler: requireRole('admin'),
      schema: {
        summary: 'Create a webhook endpoint (its secret is shown once)',
        problems: ['invalid_agent'],
        body: CreateWebhookBody,
        response: { 201: WebhookWithSecretResponse },
      },
    },
    async (request, reply) => {
      const organizationId = organizationOf(request);
      const { name, description, agent_id, enabled, signature_scheme } = request.body;
      const secret = generateWebhookSecret();
      const id = uuidv7();
      const webhook = await inOrganization(app.db, organizationId, async (tx) => {
        await checkAgent(tx, organizationId, agent_id);
        const created = await createWebhook(tx, organizationId, {
          id,
          name,
          description,
          agentId: agent_id,
          enabled,
          signatureScheme: signature_scheme,
          secretCiphertext: app.keyring.encrypt(secret, secretAad(organizationId, id)),
        });
        await recordAuditEvents(tx, [
          auditEvent(request, {
            action: 'webhook.created',
            targetType: 'webhook',
            targetId: created.id,
            details: { name, signature_scheme: created.signatureScheme, agent_id: created.agentId },
          }),
        ]);
        return created;
      });
      reply.status(201);
      return { webhook: json(webhook), secret };
    },
  );

  // List endpoints.
  app.get('/', { schema: { summary: 'List webhook endpoints', querystring: PageQuery, response: { 200: listOf(WebhookSchema) } } }, async (request) => {
    const page = await listWebhooks(app.db, organizationOf(request), toPage(request.query));
    return { data: page.data.map(json), next_cursor: page.nextCursor };
  });

  // One endpoint.
  app.get('/:id', { schema: { summary: 'Get a webhook endpoint', params: IdParams, response: { 200: WebhookResponse } } }, async (request) => {
    const webhook = await getWebhook(app.db, organizationOf(request), request.params.id);
    if (!webhook) throw notFound();
    return { webhook: json(webhook) };
  });

  // Rename, route to another agent, enable/disable, change the signature scheme.
  app.patch(
    '/:id',
    {
      preHandler: requireRole('admin'),
      schema: {
        summary: 'Update a webhook endpoint',
        problems: ['invalid_agent'],
        params: IdParams,
        body: UpdateWebhookBody,
        response: { 200: WebhookResponse },
      },
    },
    async (request) => {
      const organizationId = organizationOf(request);
      const { name, description, agent_id, enabled, signature_scheme } = request.body;
      const webhook = await inOrganization(app.db, organizationId, async (tx) => {
        await checkAgent(tx, organizationId, agent_id);
        const updated = await updateWebhook(tx, organizationId, request.params.id, { name, description, agentId: agent_id, enabled, signatureScheme: signature_scheme });
        if (!updated) throw notFound();
        await recordAuditEvents(tx, [
          auditEvent(request, {
            action: 'webhook.updated',
            targetType: 'webhook',
            targetId: updated.id,
            details: { fields: Object.keys(request.body), ...(signature_scheme ? { signature_scheme } : {}) },
          }),
        ]);
        return updated;
      });
      return { webhook: json(webhook) };
    },
  );

  // Delete an endpoint and its deliveries.
  app.delete(
    '/:id',
    {
      preHandler: requireRole('admin'),
      schema: { summary: 'Delete a webhook endpoint and its deliveries', params: IdParams, response: { 204: NoContent } },
    },
    async (request, reply) => {
      const organizationId = organizationOf(request);
      await inOrganization(app.db, organizationId, async (tx) => {
        const deleted = await deleteWebhook(tx, organizationId, request.params.id);
        if (!deleted) throw notFound();
        await recordAuditEvents(tx, [auditEvent(request, { action: 'webhook.deleted', targetType: 'webhook', targetId: deleted.id, details: { name: deleted.name } })]);
      });
      return reply.status(204).send();
    },
  );

  // New signing secret (shown once); the previous one keeps verifying for overlap_seconds.
  app.post(
    '/:id/secret',
    { preHandler: requireRole('admin'), schema: { summary: 'Rotate the signing secret', params: IdParams, body: RotateSecretBody, response: { 200: WebhookWithSecretResponse } } },
    async (request) => {
      const organizationId = organizationOf(request);
      const overlap = request.body.overlap_seconds;
      const secret = generateWebhookSecret();
      const webhook = await inOrganization(app.db, organizationId, async (tx) => {
        const current = await getWebhook(tx, organizationId, request.params.id);
        if (!current) throw notFound();
        const rotated = await rotateWebhookSecret(tx, organizationId, current.id, app.keyring.encrypt(secret, secretAad(organizationId, current.id)), overlap);
        await recordAuditEvents(tx, [
          auditEvent(request, { action: 'webhook.secret_rotated', targetType: 'webhook', targetId: current.id, details: { overlap_seconds: overlap } }),
        ]);
        // Deleted meanwhile.
        if (!rotated) throw notFound();
        return rotated;
      });
      return { webhook: json(webhook), secret };
    },
  );

  // Deliveries of one endpoint, newest first.
  app.get(
    '/:id/deliveries',
    { schema: { summary: 'List an endpoint\'s deliveries', params: IdParams, querystring: ListDeliveriesQuery, response: { 200: listOf(DeliverySummarySchema) } } },
    async (request) => {
      const organizationId = organizationOf(request);
      const webhook = await getWebhook(app.db, organizationId, request.params.id);
      if (!webhook) throw notFound();
      const page = await listDeliveries(app.db, organizationId, webhook.id, { status: request.query.status }, toPage(request.query));
      return { data: page.data.map(toDeliverySummaryJson), next_cursor: page.nextCursor };
    },
  );

  // One delivery with its captured headers and exact body.
  app.get('/:id/deliveries/:delivery_id', { schema: { summary: 'Get a delivery with its headers and body', params: DeliveryParams, response: { 200: DeliverySchema } } }, async (request) => {
    const delivery = await getDelivery(app.db, organizationOf(request), request.params.id, request.params.delivery_id);
    if (!delivery) throw new AppError('not_found', { detail: 'No such delivery' });
    return toDeliveryJson(delivery);
  });

  // Send a delivery back to pending for its agent, with a fresh attempt budget.
  app.post(
    '/:id/deliveries/:delivery_id/redeliver',
    { preHandler: requireRole('admin'), schema: { summary: 'Send a delivery back to pending', params: DeliveryParams, response: { 200: DeliverySummarySchema } } },
    async (request) => {
      const organizationId = organizationOf(request);
      const delivery = await inOrganization(app.db, organizationId, async (tx) => {
        const updated = await redeliver(tx, organizationId, request.params.id, request.params.delivery_id);
        if (!updated) throw new AppError('not_found', { detail: 'No such delivery' });
        await recordAuditEvents(tx, [auditEvent(request, { action: 'delivery.redelivered', targetType: 'delivery', targetId: updated.id, details: { webhook_id: updated.webhookId } })]);
        return updated;
      });
      return toDeliverySummaryJson(delivery);
    },
  );
};

export default webhooksRoutes;
