// Webhook ingest: POST /api/v1/hooks/{webhook_id}. No API key — the signature is the
// authentication. One straight path: limit → find the webhook → read at most the byte limit →
// verify the signature over the exact bytes → store durably and idempotently → 202.
// Hot path: a known webhook is verified against an in-process copy of its row (webhook-cache.ts),
// which the INSERT itself checks is still current; concurrent requests share the lookup query and
// the INSERT (group commit, see db/batching.ts); decrypted secrets are remembered by ciphertext.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SIGNATURE_HEADERS, verifyWebhookSignature, type VerifyResult } from '../../crypto/signatures.js';
import { decryptCache } from '../../crypto/keyring.js';
import { COPY_MIN_BYTES } from '../../db/copy-bodies.js';
import { deliveryWriter, WebhookChanged } from '../../db/deliveries.js';
import { secretAad, webhookIngestLookup, type Webhook } from '../../db/webhooks.js';
import { AppError, codeForStatus } from '../../errors.js';
import { isJsonText } from './json-text.js';
import { webhookCache } from './webhook-cache.js';

declare module 'fastify' {
  interface FastifyRequest {
    webhook: Webhook | null;
    /** True when request.webhook was read for this request, false when it is the cached copy. */
    webhookFresh: boolean;
    /** A Content-Type header Fastify could not parse, as sent (the body is then read as octets). */
    sentContentType: string | null;
  }
}

/** Reads of the webhook row for one delivery, cached copy excluded, before it answers 503. */
const MAX_FRESH_READS = 3;

/**
 * Group commit: at most 64 deliveries, or 256 KB of bodies, per INSERT. Deliveries under
 * LARGE_BODY go one INSERT at a time: the next batch fills while one commits, and fewer, larger
 * batches cost the database less per delivery (executor start-up, commit, round trip). Against
 * four INSERTs at once, database CPU per 1 KB delivery fell by 20-40 % and the ratio to the
 * baseline rose 6-19 % in three interleaved bench runs (docs/operations). Bodies of LARGE_BODY
 * or more, which gain little from sharing a commit, have their own batches, four at once, so a
 * large upload neither waits behind the small ones' commit nor holds it up. On Postgres a batch of
 * 64 KB of bodies or more goes by COPY (db/copy-bodies.ts); bodies sent as parameters are copied
 * whole several times.
 */
const BATCH = { maxBatch: 64, maxBatchBytes: 262_144 };
const SMALL_BATCHES = { ...BATCH, maxInFlight: 1 };
const LARGE_BATCHES = { ...BATCH, maxInFlight: 4 };
/** A body this large makes a COPY batch on its own. */
const LARGE_BODY = COPY_MIN_BYTES;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DELIVERY_KEY = /^[\x21-\x7e]{1,200}$/;

export const IngestParams = z.object({ webhook_id: z.string().describe('The webhook id from its endpoint_url') });
export const IngestResponse = z.object({
  delivery_id: z.uuid(),
  duplicate: z.boolean().describe('true when this delivery id was already stored: nothing new was stored'),
});

/**
 * Header names that carry a secret, whatever the sender calls them: X-Gitlab-Token, X-Api-Key,
 * X-Functions-Key, X-Auth-Token, X-Slack-Signature, X-Shopify-Hmac-Sha256, X-Amz-Security-Token,
 * X-Goog-Iap-Jwt-Assertion, session cookies… Better one header too few kept than one secret stored.
 */
const CREDENTIAL_HEADER = /token|secret|pass|sig|hmac|auth|bearer|jwt|key$|credential|cookie|session/;
/** Named like a credential, but a sender's description of the event (Bitbucket's X-Event-Key). */
const NOT_CREDENTIALS = new Set(['x-event-key']);
/** A body sent with one of these is stored as sent, but is not the JSON its content type says until decoded. */
const IDENTITY_ENCODING = /^\s*(identity)?\s*$/i;
const JSON_TYPE = /^application\/([\w.+-]+\+)?json\s*(;|$)/i;
/** A media type Fastify can parse (type/subtype, then any parameters); others would get 415. */
const MEDIA_TYPE = /^\s*[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+\s*(;.*)?$/;

/** Whether a read of the webhook found it deleted (404) or disabled (410): that answers before the body's problem. */
const isGone = (error: unknown) => error instanceof AppError && (error.code === 'not_found' || error.code === 'webhook_disabled');

/** Headers worth keeping with a delivery: never signatures or credentials. */
function capturedHeaders(request: FastifyRequest): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || SIGNATURE_HEADERS.has(name) || (CREDENTIAL_HEADER.test(name) && !NOT_CREDENTIALS.has(name))) continue;
    if (name === 'content-type' || name === 'content-encoding' || name === 'user-agent' || name.startsWith('x-') || name.startsWith('webhook-')) {
      kept[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  if (request.sentContentType !== null) kept['content-type'] = request.sentContentType;
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

/** What is stored of a verified request besides its webhook; refuses a body declared JSON that is not. */
function deliveryOf(request: FastifyRequest, body: Buffer) {
  const contentType = request.sentContentType ?? request.headers['content-type'] ?? null;
  const encoding = request.headers['content-encoding'];
  const decoded = encoding === undefined || IDENTITY_ENCODING.test(encoding);
  if (contentType && decoded && JSON_TYPE.test(contentType) && !isJsonText(body)) {
    throw new AppError('invalid_json', { detail: 'The body is declared as JSON but does not parse' });
  }
  return {
    deliveryKey: deliveryKey(request),
    contentType,
    body,
    bodySha256: createHash('sha256').update(body).digest('hex'),
    headers: capturedHeaders(request),
    sourceIp: request.ip,
  };
}

const hooks: FastifyPluginAsync = async (instance) => {
  const app = instance.withTypeProvider<ZodTypeProvider>();
  const config = app.config;

  // Any content type is accepted and kept as the exact bytes received; Fastify stops reading
  // (413) as soon as the limit is passed, with or without an honest Content-Length.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.webhookMaxPayloadBytes }, (_request, body, done) => done(null, body));
  app.decorateRequest('webhook', null);
  app.decorateRequest('webhookFresh', false);
  app.decorateRequest('sentContentType', null);
  const lookup = webhookIngestLookup(app.db, { timeoutMs: config.databaseWaitTimeoutMs });
  const cache = webhookCache();

  /** The webhook's current row, read now; unknown and disabled webhooks end the request. */
  const freshWebhook = async (id: string): Promise<Webhook> => {
    const webhook = await lookup.call(id);
    if (!webhook) {
      cache.delete(id);
      throw new AppError('not_found', { detail: 'No such webhook' });
    }
    cache.set(webhook);
    if (!webhook.enabled) throw new AppError('webhook_disabled', { detail: 'This webhook is disabled' });
    return webhook;
  };
  const copy = app.database.sql && {
    sql: app.database.sql,
    timeoutMs: config.databaseWaitTimeoutMs,
    onRefused: (err: unknown) =>
      app.log.warn({ err }, 'large webhook bodies now go to the database as parameters, which takes more memory: the database role may not create temporary tables (GRANT TEMPORARY ON DATABASE …, then restart)'),
  };
  const smallWriter = deliveryWriter(app.db, { ...SMALL_BATCHES, timeoutMs: config.databaseWaitTimeoutMs, copy });
  const largeWriter = deliveryWriter(app.db, { ...LARGE_BATCHES, timeoutMs: config.databaseWaitTimeoutMs, copy });
  const decrypt = decryptCache(app.keyring);

  /**
   * Checks the delivery's signature with the webhook's secrets. 'stale' when `cached` and a secret
   * cannot be decrypted (a copy from before a key rotation): the caller reads the row again.
   */
  const verify = (webhook: Webhook, request: FastifyRequest, body: Buffer, cached: boolean): VerifyResult | { ok: true } | 'stale' => {
    if (webhook.signatureScheme === 'none') return { ok: true };
    const aad = secretAad(webhook.organizationId, webhook.id);
    let secrets: string[];
    try {
      secrets = [decrypt(webhook.secretCiphertext, aad)];
      if (webhook.previousSecretCiphertext && webhook.previousSecretExpiresAt && webhook.previousSecretExpiresAt.getTime() > Date.now()) {
        secrets.push(decrypt(webhook.previousSecretCiphertext, aad));
      }
    } catch (err) {
      if (cached) return 'stale';
      throw err;
    }
    return verifyWebhookSignature(request.headers, body, secrets, {
      nowSeconds: Math.floor(Date.now() / 1000),
      toleranceSeconds: config.webhookToleranceS,
    });
  };

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
      config: { auth: 'webhookSignature', ownDeadline: true },
      onRequest: [
        async (request) => app.limiters.hit('webhook', request),
        async (request) => {
          // Any content type is taken, also one Fastify cannot parse (it would answer 415): the
          // body is read as octets and the header stored as sent.
          const sent = request.headers['content-type'];
          if (sent !== undefined && !MEDIA_TYPE.test(sent)) {
            request.sentContentType = sent;
            request.headers['content-type'] = 'application/octet-stream';
          }
        },
        async (request) => {
          // Ids are UUIDs, which Postgres reads in either case; the cache knows them in lower case.
          const webhookId = (request.params as { webhook_id: string }).webhook_id.toLowerCase();
          if (!UUID.test(webhookId)) throw new AppError('not_found', { detail: 'No such webhook' });
          const cached = cache.get(webhookId);
          request.webhook = cached ?? (await freshWebhook(webhookId));
          request.webhookFresh = cached === undefined;
        },
      ],
      schema: {
        summary: 'Receive a signed webhook delivery',
        problems: ['invalid_json', 'bad_request', 'encryption_key_unavailable'],
        params: IngestParams,
        response: { 200: IngestResponse, 202: IngestResponse },
      },
      // A body refused as too large on the strength of a cached copy: an endpoint disabled or
      // deleted since answers 410 or 404 like on any other request, not the body's problem. If
      // that read fails otherwise (the database is slow), the body's problem is the answer.
      errorHandler: async (error, request) => {
        if (error.statusCode === 413 && request.webhook && !request.webhookFresh) {
          try {
            await freshWebhook(request.webhook.id);
          } catch (gone) {
            if (isGone(gone)) throw gone;
          }
        }
        throw error;
      },
    },
    async (request, reply) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      let delivery: ReturnType<typeof deliveryOf> | undefined;
      let webhook = request.webhook!;
      let freshReads = request.webhookFresh ? 1 : 0;
      const readAgain = async () => {
        webhook = await freshWebhook(webhook.id);
        freshReads += 1;
        request.webhookFresh = true;
      };
      for (;;) {
        // A cached copy that does not verify may be out of date (a rotation through another
        // instance): only the current row may reject the signature.
        const verdict = verify(webhook, request, body, freshReads === 0);
        if (verdict === 'stale' || (!verdict.ok && freshReads === 0)) {
          await readAgain();
          continue;
        }
        if (!verdict.ok) {
          countFailure(request, webhook, verdict.code);
          throw new AppError(verdict.code, { detail: 'The webhook signature could not be verified; see docs/reference/webhooks.md' });
        }
        // Checked once the sender is known to hold the secret, and refused only on the current
        // row: verified against a cached copy, the endpoint may since have been disabled (410) or
        // its secret rotated away (403), and those answer first.
        if (!delivery) {
          try {
            delivery = deliveryOf(request, body);
          } catch (refused) {
            if (freshReads > 0) throw refused;
            await readAgain().catch((error: unknown) => {
              // Any other failure to read it (a slow database): the body's own problem is the answer.
              throw isGone(error) ? error : refused;
            });
            continue;
          }
        }
        try {
          const stored = await (body.length >= LARGE_BODY ? largeWriter : smallWriter).call({
            ...delivery,
            organizationId: webhook.organizationId,
            webhookId: webhook.id,
            verifiedWith: webhook,
          });
          reply.status(stored.duplicate ? 200 : 202);
          return { delivery_id: stored.id, duplicate: stored.duplicate };
        } catch (err) {
          if (!(err instanceof WebhookChanged)) throw err;
          // Changed since it was read or cached: verify again against the row as it is now.
          cache.delete(webhook.id);
          if (freshReads >= MAX_FRESH_READS) {
            throw new AppError('unavailable', { detail: 'The webhook kept changing while this delivery was stored; send it again' });
          }
          await readAgain();
        }
      }
    },
  );
};

export default hooks;
