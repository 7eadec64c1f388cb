// Webhook ingest: POST /api/v1/hooks/{webhook_id}. No API key — the signature is the
// authentication. One straight path: limit → find the webhook → read at most the byte limit →
// verify the signature over the exact bytes → store durably and idempotently → 202.
// Hot path: concurrent requests share the webhook lookup query and the INSERT (group commit, see
// db/batching.ts); decrypted secrets are remembered by ciphertext, so a rotation is seen at once.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SIGNATURE_HEADERS, verifyWebhookSignature } from '../../crypto/signatures.js';
import { decryptCache } from '../../crypto/keyring.js';
import { deliveryWriter } from '../../db/deliveries.js';
import { secretAad, webhookIngestLookup, type Webhook } from '../../db/webhooks.js';
import { AppError, codeForStatus } from '../../errors.js';
import { isJsonText } from './json-text.js';

declare module 'fastify' {
  interface FastifyRequest {
    webhook: Webhook | null;
  }
}

/**
 * Group commit: at most this many deliveries, or this many body bytes, per INSERT; four INSERTs at
 * once. A large body goes in a batch of its own. On Postgres a batch of 64 KB of bodies or more
 * goes by COPY (db/copy-bodies.ts); bodies sent as parameters are copied whole several times.
 */
const BATCH = { maxBatch: 64, maxBatchBytes: 262_144, maxInFlight: 4 };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DELIVERY_KEY = /^[\x21-\x7e]{1,200}$/;

export const IngestParams = z.object({ webhook_id: z.string().describe('The webhook id from its endpoint_url') });
export const IngestResponse = z.object({
  delivery_id: z.uuid(),
  duplicate: z.boolean().describe('true when this delivery id was already stored: nothing new was stored'),
});

/** Headers worth keeping with a delivery: never signatures or credentials. */
function capturedHeaders(request: FastifyRequest): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || SIGNATURE_HEADERS.has(name) || name === 'authorization' || name === 'x-agent-token' || name === 'cookie') continue;
    if (name === 'content-type' || name === 'user-agent' || name.startsWith('x-') || name.startsWith('webhook-')) {
      kept[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return kept;
}

function deliveryKey(request: FastifyRequest): string | null {
  for (const name of ['webhook-id', 'x-github-delivery', 'idempotency-key']) {
    const value = request.headers[name];
    if (typeof value === 'string' && value !== '') {
      if (!DELIVERY_KEY.test(value)) throw new AppError('bad_request', { detail: `${name} must be 1-200 printable ASCII characters` });
      return value;
    }
  }
  return null;
}

const hooks: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  const config = app.config;

  // Any content type is accepted and kept as the exact bytes received; Fastify stops reading
  // (413) as soon as the limit is passed, with or without an honest Content-Length.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.webhookMaxPayloadBytes }, (_request, body, done) => done(null, body));
  app.decorateRequest('webhook', null);
  const lookup = webhookIngestLookup(app.db, { timeoutMs: config.databaseWaitTimeoutMs });
  const writer = deliveryWriter(app.db, {
    ...BATCH,
    timeoutMs: config.databaseWaitTimeoutMs,
    copy: app.database.sql && {
      sql: app.database.sql,
      timeoutMs: config.databaseWaitTimeoutMs,
      onRefused: (err) =>
        app.log.warn({ err }, 'large webhook bodies now go to the database as parameters, which takes more memory: the database role may not create temporary tables (GRANT TEMPORARY ON DATABASE …, then restart)'),
    },
  });
  const decrypt = decryptCache(app.keyring);

  const countFailure = (request: FastifyRequest, webhook: Webhook, reason: string) => {
    app.auditFailures.add({
      organizationId: webhook.organizationId,
      action: 'webhook.signature_failed',
      clientIp: request.ip,
      credentialId: webhook.id,
      reason,
      requestId: request.id,
    });
    request.log.warn({ webhook_id: webhook.id, reason }, 'webhook signature rejected');
    app.metrics.webhookSignatureFailed(reason);
  };

  // Every ingest answer counts once: 202 accepted, 200 duplicate, anything else rejected with its
  // problem code (signature, limit, unknown or disabled webhook, body size, database outage…).
  app.addHook('onResponse', (request, reply, done) => {
    if (reply.statusCode === 202) app.metrics.webhookDelivered('accepted');
    else if (reply.statusCode === 200) app.metrics.webhookDelivered('duplicate');
    else app.metrics.webhookRejected(request.problemCode ?? codeForStatus(reply.statusCode));
    done();
  });

  // Receive one signed delivery from a sender.
  app.post(
    '/:webhook_id',
    {
      bodyLimit: config.webhookMaxPayloadBytes,
      config: { auth: 'webhookSignature' },
      onRequest: [
        async (request) => app.limiters.hit('webhook', request),
        async (request) => {
          const { webhook_id } = request.params as { webhook_id: string };
          const webhook = UUID.test(webhook_id) ? await lookup.call(webhook_id) : null;
          if (!webhook) throw new AppError('not_found', { detail: 'No such webhook' });
          if (!webhook.enabled) throw new AppError('webhook_disabled', { detail: 'This webhook is disabled' });
          request.webhook = webhook;
        },
      ],
      schema: {
        summary: 'Receive a signed webhook delivery',
        problems: ['invalid_json', 'bad_request', 'encryption_key_unavailable'],
        params: IngestParams,
        response: { 200: IngestResponse, 202: IngestResponse },
      },
    },
    async (request, reply) => {
      const webhook = request.webhook!;
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);

      if (webhook.signatureScheme !== 'none') {
        const aad = secretAad(webhook.organizationId, webhook.id);
        const secrets = [decrypt(webhook.secretCiphertext, aad)];
        if (webhook.previousSecretCiphertext && webhook.previousSecretExpiresAt && webhook.previousSecretExpiresAt.getTime() > Date.now()) {
          secrets.push(decrypt(webhook.previousSecretCiphertext, aad));
        }
        const verdict = verifyWebhookSignature(request.headers, body, secrets, {
          nowSeconds: Math.floor(Date.now() / 1000),
          toleranceSeconds: config.webhookToleranceS,
        });
        if (!verdict.ok) {
          countFailure(request, webhook, verdict.code);
          throw new AppError(verdict.code, { detail: 'The webhook signature could not be verified; see docs/reference/webhooks.md' });
        }
      }

      const contentType = request.headers['content-type'] ?? null;
      if (contentType && /^application\/([\w.+-]+\+)?json\b/i.test(contentType) && !isJsonText(body)) {
        throw new AppError('invalid_json', { detail: 'The body is declared as JSON but does not parse' });
      }

      const stored = await writer.call({
        organizationId: webhook.organizationId,
        webhookId: webhook.id,
        deliveryKey: deliveryKey(request),
        contentType,
        body,
        bodySha256: createHash('sha256').update(body).digest('hex'),
        headers: capturedHeaders(request),
        sourceIp: request.ip,
      });
      reply.status(stored.duplicate ? 200 : 202);
      return { delivery_id: stored.id, duplicate: stored.duplicate };
    },
  );
};

export default hooks;
