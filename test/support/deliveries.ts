// Deliveries for tests that store them directly (db/deliveries.ts), without going through HTTP.
import { createHash } from 'node:crypto';
import type { NewDelivery } from '../../src/db/deliveries.js';
import type { WebhookWithRow } from '../helper.js';

/** A JSON delivery to `hook`, verified against its stored row; `fields` replace the defaults. */
export function newDelivery(
  hook: Pick<WebhookWithRow, 'id' | 'organizationId' | 'verifiedWith'>,
  body: Buffer | string,
  fields: Partial<Omit<NewDelivery, 'body' | 'bodySha256'>> = {},
): NewDelivery {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return {
    organizationId: hook.organizationId,
    webhookId: hook.id,
    verifiedWith: hook.verifiedWith,
    deliveryKey: null,
    contentType: 'application/json',
    body: bytes,
    bodySha256: createHash('sha256').update(bytes).digest('hex'),
    headers: {},
    sourceIp: '127.0.0.1',
    ...fields,
  };
}
