import { z } from 'zod';
import type { Delivery } from '../../db/deliveries.js';
import type { Webhook } from '../../db/webhooks.js';
import { iso, isoOrNull, Name, NullableTimestamp, optionalBody, PageQueryShape, PathId, Timestamp } from '../common.js';

const Description = z.string().trim().max(2000);
const SignatureSchemeField = z
  .enum(['auto', 'none'])
  .describe('auto: a GitHub-style or Standard Webhooks signature is required. none: no signature (only for senders that cannot sign)');

export const WebhookSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string().nullable(),
  enabled: z.boolean(),
  agent_id: z.uuid().nullable(),
  signature_scheme: z.enum(['auto', 'none']),
  endpoint_url: z.string().describe('Where senders POST: BASE_URL + /api/v1/hooks/{id}'),
  previous_secret_expires_at: NullableTimestamp.describe('While set and in the future, the previous secret still verifies'),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const CreateWebhookBody = z.strictObject({
  name: Name,
  description: Description.optional(),
  agent_id: z.uuid().nullable().optional(),
  enabled: z.boolean().optional(),
  signature_scheme: SignatureSchemeField.optional(),
});

export const UpdateWebhookBody = z
  .strictObject({
    name: Name.optional(),
    description: Description.nullable().optional(),
    agent_id: z.uuid().nullable().optional(),
    enabled: z.boolean().optional(),
    signature_scheme: SignatureSchemeField.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { error: 'must change at least one field' });

export const RotateSecretBody = optionalBody(
  z.strictObject({
    overlap_seconds: z.number().int().min(0).max(604_800).default(86_400).describe('How long the previous secret keeps verifying (max 7 days)'),
  }),
);

export const WebhookResponse = z.object({ webhook: WebhookSchema });
export const WebhookWithSecretResponse = z.object({
  webhook: WebhookSchema,
  secret: z.string().describe('The signing secret (whsec_…). Shown only in this response'),
});

export const DELIVERY_STATUSES = ['pending', 'leased', 'done', 'dead'] as const;

export const DeliverySummarySchema = z.object({
  id: z.uuid(),
  webhook_id: z.uuid(),
  delivery_key: z.string().nullable(),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number().int(),
  content_type: z.string().nullable(),
  size: z.number().int(),
  body_sha256: z.string(),
  source_ip: z.string().nullable(),
  received_at: Timestamp,
  available_at: Timestamp,
  lease_expires_at: NullableTimestamp,
  completed_at: NullableTimestamp,
  last_error: z.string().nullable(),
});

export const BodyFields = {
  headers: z.record(z.string(), z.string()),
  body_base64: z.string().describe('The exact bytes received'),
  body_text: z.string().nullable().describe('The body as text when it is valid UTF-8'),
};

export const DeliverySchema = DeliverySummarySchema.extend(BodyFields);

export const ListDeliveriesQuery = z.strictObject({ ...PageQueryShape, status: z.enum(DELIVERY_STATUSES).optional() });
export const DeliveryParams = z.strictObject({ id: PathId, delivery_id: PathId });

export function toWebhookJson(webhook: Webhook, baseUrl: string) {
  return {
    id: webhook.id,
    name: webhook.name,
    description: webhook.description,
    enabled: webhook.enabled,
    agent_id: webhook.agentId,
    signature_scheme: webhook.signatureScheme,
    endpoint_url: `${baseUrl}/api/v1/hooks/${webhook.id}`,
    previous_secret_expires_at: isoOrNull(webhook.previousSecretExpiresAt),
    created_at: iso(webhook.createdAt),
    updated_at: iso(webhook.updatedAt),
  };
}

export function toDeliverySummaryJson(delivery: Delivery) {
  return {
    id: delivery.id,
    webhook_id: delivery.webhookId,
    delivery_key: delivery.deliveryKey,
    status: delivery.status,
    attempts: delivery.attempts,
    content_type: delivery.contentType,
    size: delivery.size,
    body_sha256: delivery.bodySha256,
    source_ip: delivery.sourceIp,
    received_at: iso(delivery.receivedAt),
    available_at: iso(delivery.availableAt),
    lease_expires_at: isoOrNull(delivery.leaseExpiresAt),
    completed_at: isoOrNull(delivery.completedAt),
    last_error: delivery.lastError,
  };
}

// ignoreBOM: a leading byte-order mark is part of the body, so body_text keeps it (as body_base64 does).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function bodyJson(delivery: Delivery) {
  let text: string | null;
  try {
    text = utf8.decode(delivery.body);
  } catch {
    text = null;
  }
  return { headers: delivery.headers, body_base64: delivery.body.toString('base64'), body_text: text };
}

export const toDeliveryJson = (delivery: Delivery) => ({ ...toDeliverySummaryJson(delivery), ...bodyJson(delivery) });
