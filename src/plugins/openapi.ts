// The API description: an OpenAPI 3.1 document generated from the zod schemas that validate the
// requests, at GET /openapi.json, and a reference page at /docs (Swagger UI, every asset served
// by this server). Each operation's security comes from the route's `config.auth` (set where the
// authentication hook is installed) and its error responses from what its hooks and schemas can
// reject, plus the codes its handler throws (`schema.problems`).
import { STATUS_CODES } from 'node:http';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import swagger, { type SwaggerTransform, type SwaggerTransformObject } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import type { RouteOptions } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PROBLEMS, type ProblemCode } from '../errors.js';
import { requiredRoleOf, type AuthScheme } from './auth.js';
import { ProblemSchema } from './errors.js';
import { SHARED_HELMET_OPTIONS, API_SECURITY_HEADERS } from './security-headers.js';

declare module 'fastify' {
  interface FastifySchema {
    /** Error codes the handler itself can answer, beyond what the hooks and schemas imply. */
    problems?: readonly ProblemCode[];
  }
}

type Json = Record<string, unknown>;

/** The reference page may load its own scripts, styles and images, and nothing from elsewhere. */
const DOCS_HELMET_OPTIONS: FastifyHelmetOptions = {
  ...SHARED_HELMET_OPTIONS,
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      baseUri: ["'none'"],
      connectSrc: ["'self'"],
      fontSrc: ["'self'", 'data:'],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
      imgSrc: ["'self'", 'data:'],
      objectSrc: ["'none'"],
      scriptSrc: ["'self'"],
      scriptSrcAttr: ["'none'"],
      styleSrc: ["'self'"],
    },
  },
};

const SECURITY_SCHEMES = {
  platformAdmin: {
    type: 'http',
    scheme: 'bearer',
    description: 'The platform admin token (ADMIN_TOKEN or ADMIN_TOKEN_FILE): `Authorization: Bearer <token>`. Only for /api/v1/organizations.',
  },
  apiKey: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'sbk_<public id>_<secret>',
    description:
      'An organization API key: `Authorization: Bearer sbk_…`. Role `admin` may do everything in its organization; `read_only` may only read (writes answer 403 forbidden).',
  },
  agentToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'sba_<public id>_<secret>',
    description: 'An agent token: `Authorization: Bearer sba_…` (or the X-Agent-Token header).',
  },
  agentTokenHeader: { type: 'apiKey', in: 'header', name: 'X-Agent-Token', description: 'An agent token (`sba_…`) in its own header.' },
  metricsToken: {
    type: 'http',
    scheme: 'bearer',
    description: 'METRICS_TOKEN as a bearer token. When METRICS_TOKEN is not set, /metrics needs no token but answers only direct loopback clients (403 metrics_loopback_only otherwise).',
  },
  hubSignature256: {
    type: 'apiKey',
    in: 'header',
    name: 'X-Hub-Signature-256',
    description: 'GitHub style: `sha256=<hex HMAC-SHA256 of the exact body>`, keyed with the whole `whsec_…` secret.',
  },
  webhookSignature: { type: 'apiKey', in: 'header', name: 'X-Webhook-Signature', description: 'The same value as X-Hub-Signature-256, for other senders.' },
  standardWebhooks: {
    type: 'apiKey',
    in: 'header',
    name: 'webhook-signature',
    description:
      'Standard Webhooks: `v1,<base64 HMAC-SHA256 of "webhook-id.webhook-timestamp.body">` keyed with the base64-decoded part of the secret after `whsec_`; needs the `webhook-id` and `webhook-timestamp` (Unix seconds, within WEBHOOK_TOLERANCE_S) headers too.',
  },
} as const;

const SECURITY: Record<AuthScheme, Array<Record<string, string[]>>> = {
  platformAdmin: [{ platformAdmin: [] }],
  apiKey: [{ apiKey: [] }],
  agentToken: [{ agentToken: [] }, { agentTokenHeader: [] }],
  webhookSignature: [{ hubSignature256: [] }, { webhookSignature: [] }, { standardWebhooks: [] }],
  metricsToken: [{ metricsToken: [] }],
};

const TAGS = [
  { name: 'probes', description: 'Liveness and readiness, no authentication' },
  { name: 'metrics', description: 'Prometheus metrics (METRICS_TOKEN, or loopback only)' },
  { name: 'documentation', description: 'This document and the reference page, no authentication' },
  { name: 'organizations', description: 'Tenants (platform admin token)' },
  { name: 'organization', description: "The API key's own organization" },
  { name: 'api-keys', description: 'Organization API keys' },
  { name: 'audit-events', description: "The organization's audit log" },
  { name: 'agents', description: 'Agents, managed by operators' },
  { name: 'agent', description: 'The API agents call with their own token' },
  { name: 'webhooks', description: 'Webhook endpoints and their deliveries' },
  { name: 'hooks', description: 'Webhook ingest: senders POST signed deliveries here' },
  { name: 'oauth', description: "Connecting the organization's Google account" },
];

/** The first path segment under /api/v1 names the area; the probes and docs live at the root. */
function tagOf(url: string): string {
  const area = /^\/api\/v1\/([^/]+)/.exec(url)?.[1];
  if (area) return area;
  if (url === '/metrics') return 'metrics';
  return url === '/healthz' || url === '/readyz' ? 'probes' : 'documentation';
}

function has(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** Every problem code the route can plausibly answer, from its hooks, schemas and handler. */
function problemsOf(route: RouteOptions): ProblemCode[] {
  const schema = route.schema ?? {};
  const auth = route.config?.auth;
  const codes = new Set<ProblemCode>();
  if (has(schema.body) || has(schema.querystring) || has(schema.params)) codes.add('validation_failed');
  if (has(schema.body)) ['invalid_json', 'payload_too_large', 'unsupported_media_type'].forEach((code) => codes.add(code as ProblemCode));
  if (auth === 'platformAdmin' || auth === 'apiKey' || auth === 'agentToken') codes.add('unauthorized');
  if (auth === 'platformAdmin') codes.add('admin_not_configured');
  if (requiredRoleOf(route) === 'admin') codes.add('forbidden');
  if (auth === 'agentToken') ['agent_disabled', 'rate_limited'].forEach((code) => codes.add(code as ProblemCode));
  if (auth === 'webhookSignature') {
    for (const code of ['rate_limited', 'not_found', 'webhook_disabled', 'payload_too_large', 'signature_missing', 'signature_invalid', 'timestamp_out_of_tolerance'] as const) {
      codes.add(code);
    }
  }
  if (auth === 'metricsToken') ['unauthorized', 'metrics_loopback_only'].forEach((code) => codes.add(code as ProblemCode));
  if (route.url.includes(':')) codes.add('not_found');
  // Authentication reads the database, so every authenticated route can meet an outage.
  if (auth !== undefined) codes.add('unavailable');
  for (const code of schema.problems ?? []) codes.add(code);
  return [...codes];
}

const transform: SwaggerTransform = (document) => {
  const transformed = jsonSchemaTransform(document as Parameters<typeof jsonSchemaTransform>[0]);
  // A prefix's '/' route is registered with and without the slash; the API spells it without.
  const url = transformed.url.length > 1 ? transformed.url.replace(/\/$/, '') : transformed.url;
  const schema = transformed.schema ?? {};
  if ((schema as { hide?: boolean }).hide) return { schema, url };
  const route = document.route;
  const { problems: _problems, ...rest } = schema as Json;
  const auth = route.config?.auth;
  const role = requiredRoleOf(route);
  const security = auth ? SECURITY[auth] : [];
  const html = (rest.produces as string[] | undefined)?.includes('text/html') ?? false;
  const roleNote = auth === 'apiKey' ? `\n\nAPI key role: ${role ?? 'any (admin or read_only)'}.` : '';
  return {
    url,
    schema: {
      ...rest,
      tags: [tagOf(url)],
      ...(roleNote ? { description: `${(rest.description as string | undefined) ?? ''}${roleNote}`.trim() } : {}),
      security,
      // Turned into problem+json responses by transformObject (x- keys reach the operation as-is).
      'x-problems': problemsOf(route),
      'x-optional-body': isOptionalBody(route.schema?.body) || auth === 'webhookSignature',
      'x-html': html,
      ...(auth === 'webhookSignature' ? INGEST : {}),
    },
  };
};

/** Webhook ingest reads raw bytes (no body schema) and a few optional delivery headers. */
const INGEST = {
  consumes: ['*/*'],
  body: { description: 'Any content type, stored as the exact bytes received (up to WEBHOOK_MAX_PAYLOAD_BYTES); JSON types must parse' },
  headers: {
    type: 'object',
    properties: {
      'webhook-id': { type: 'string', description: 'Standard Webhooks message id: signed, and the idempotency key of the delivery' },
      'webhook-timestamp': { type: 'string', description: 'Standard Webhooks: Unix seconds, signed' },
      'x-github-delivery': { type: 'string', description: 'GitHub delivery id: the idempotency key when webhook-id is absent' },
      'idempotency-key': { type: 'string', description: 'Idempotency key for other senders (1-200 printable ASCII characters)' },
    },
  },
};

/** optionalBody() in routes/common.ts: a preprocess that turns a missing body into {}. */
function isOptionalBody(body: unknown): boolean {
  if (!(body instanceof z.ZodType)) return false;
  const def = body._zod.def as { type: string; in?: z.ZodType };
  return def.type === 'pipe' && def.in?._zod.def.type === 'transform';
}

const RESPONSE_HEADERS: Partial<Record<number, Json>> = {
  401: { 'WWW-Authenticate': { description: 'Bearer challenge', schema: { type: 'string' } } },
  429: { 'Retry-After': { description: 'Seconds to wait', schema: { type: 'integer' } } },
  503: { 'Retry-After': { description: 'Seconds to wait (database outages)', schema: { type: 'integer' } } },
};

const PROBLEM_CONTENT = { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } };
/** The OAuth callback answers every problem with a page (config.renderProblem); the code is in X-Error-Code. */
const PAGE_CONTENT = { 'text/html': { schema: { type: 'string' } } };
const PAGE_HEADERS = { 'X-Error-Code': { description: 'The problem code', schema: { type: 'string' } } };

function problemResponses(codes: ProblemCode[], html: boolean): Record<string, Json> {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of codes) byStatus.set(PROBLEMS[code].status, [...(byStatus.get(PROBLEMS[code].status) ?? []), code]);
  const responses: Record<string, Json> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[String(status)] = {
      description: list.map((code) => `\`${code}\`: ${PROBLEMS[code].title}`).join('; '),
      ...(RESPONSE_HEADERS[status] || html ? { headers: { ...RESPONSE_HEADERS[status], ...(html ? PAGE_HEADERS : {}) } } : {}),
      content: html ? PAGE_CONTENT : PROBLEM_CONTENT,
    };
  }
  return responses;
}

const transformObject: SwaggerTransformObject = (document) => {
  const openapi = jsonSchemaTransformObject(document as Parameters<typeof jsonSchemaTransformObject>[0]) as Json & { paths: Record<string, Record<string, Json>> };
  for (const item of Object.values(openapi.paths)) {
    for (const operation of Object.values(item)) {
      const codes = (operation['x-problems'] ?? []) as ProblemCode[];
      const optional = operation['x-optional-body'] === true;
      const html = operation['x-html'] === true;
      delete operation['x-problems'];
      delete operation['x-optional-body'];
      delete operation['x-html'];
      const responses = (operation.responses ?? {}) as Record<string, Json>;
      for (const [status, response] of Object.entries(responses)) {
        if (response.description === 'Default Response') response.description = STATUS_CODES[Number(status)] ?? 'Success';
      }
      // A status the route already describes (e.g. readiness 503) keeps its own body.
      operation.responses = {
        ...responses,
        ...Object.fromEntries(Object.entries(problemResponses(codes, html)).filter(([status]) => !responses[status])),
        default: { description: '`internal_error` (500) or another problem', ...(html ? { headers: PAGE_HEADERS } : {}), content: html ? PAGE_CONTENT : PROBLEM_CONTENT },
      };
      if (optional && operation.requestBody) (operation.requestBody as Json).required = false;
    }
  }
  openapi.paths['/docs'] = DOCS_PATH;
  // A tree without shared objects, so the YAML form (/docs/yaml) has no anchors and aliases.
  return JSON.parse(JSON.stringify(openapi)) as typeof openapi;
};

function problemComponent(): Json {
  const { $schema: _dialect, ...schema } = z.toJSONSchema(ProblemSchema, { target: 'draft-2020-12', io: 'output' });
  return schema;
}

/** The reference page itself (Swagger UI hides its own routes; its assets live under /docs/static/). */
const DOCS_PATH = {
  get: {
    tags: ['documentation'],
    summary: 'This reference, as a web page (Swagger UI, served offline)',
    security: [],
    responses: {
      '200': { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } },
      default: { description: '`internal_error` (500) or another problem', content: PROBLEM_CONTENT },
    },
  },
};

export default fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Switchboard API',
          version: '1',
          description:
            'Multi-tenant control plane for AI agents. Errors are `application/problem+json` with a stable `code` (the Problem schema lists every code). Lists are paginated with `limit` and the previous `next_cursor`.',
        },
        components: {
          securitySchemes: SECURITY_SCHEMES as never,
          schemas: { Problem: problemComponent() as never },
        },
        tags: TAGS,
      },
      transform,
      transformObject,
    });

    // A browser page: @fastify/helmet, per request, with the page's own policy over the API's.
    await app.register(async (docs) => {
      docs.addHook('onRequest', (_request, reply, done) => {
        for (const name of Object.keys(API_SECURITY_HEADERS)) reply.removeHeader(name);
        done();
      });
      await docs.register(helmet, DOCS_HELMET_OPTIONS);
      await docs.register(swaggerUi, { routePrefix: '/docs', validatorUrl: false, uiConfig: { deepLinking: true, defaultModelsExpandDepth: 0 } });
    });

    // This document, for code generators and tools.
    app.get('/openapi.json', { schema: { summary: 'The OpenAPI 3.1 document of this API' } }, async () => app.swagger());
  },
  { name: 'openapi', dependencies: ['errors', 'auth', 'agent-auth'] },
);
