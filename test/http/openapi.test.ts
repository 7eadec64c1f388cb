// The OpenAPI document is generated from the routes: it must name every route the app serves,
// validate as OpenAPI 3.1, list every error code, and declare the security each route enforces.
import { randomUUID } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { PROBLEMS } from '../../src/errors.js';
import { asAdmin, bearer, build, createAgent, createKey, createOrg, createWebhook, randomIpv6 } from '../helper.js';

type Json = Record<string, any>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** The reference page's own files (HTML, scripts, styles, the document again) are not API operations. */
const isDocsAsset = (url: string) => url.startsWith('/docs/');

async function documentOf(app: FastifyInstance): Promise<Json> {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  if (res.statusCode !== 200) throw new Error(`GET /openapi.json: ${res.statusCode} ${res.body}`);
  return res.json();
}

function operations(doc: Json): Array<{ method: string; path: string; op: Json }> {
  const list = [];
  for (const [path, item] of Object.entries<Json>(doc.paths)) {
    for (const method of METHODS) if (item[method]) list.push({ method: method.toUpperCase(), path, op: item[method] as Json });
  }
  return list;
}

t.test('the document validates as OpenAPI 3.1 and every $ref resolves', async (t) => {
  const app = await build(t);
  const doc = await documentOf(app);
  t.equal(doc.openapi, '3.1.0');
  const validator = new Validator();
  const result = await validator.validate(doc);
  t.same(result.errors, undefined, 'no schema errors');
  t.ok(result.valid, 'valid');
  t.equal(validator.version, '3.1');
  t.doesNotThrow(() => validator.resolveRefs(), 'every $ref resolves');
});

t.test('every route the app serves is in the document, and nothing else', async (t) => {
  const app = await build(t);
  const doc = await documentOf(app);
  const served = new Set(
    app.knownRoutes
      .filter((route) => route.method !== 'HEAD' && !isDocsAsset(route.url))
      .map((route) => `${route.method} ${route.url.replace(/:(\w+)/g, '{$1}')}`),
  );
  const documented = new Set(operations(doc).map(({ method, path }) => `${method} ${path}`));
  t.ok(served.size > 30, 'the routes were collected');
  for (const route of served) t.ok(documented.has(route), `documented: ${route}`);
  for (const operation of documented) t.ok(served.has(operation), `served: ${operation}`);
});

t.test('the Problem schema enumerates every error code, and each listed code matches its response status', async (t) => {
  const app = await build(t);
  const doc = await documentOf(app);
  const problem = doc.components.schemas.Problem;
  t.same([...problem.properties.code.enum].sort(), Object.keys(PROBLEMS).sort());
  t.same(problem.required.sort(), ['code', 'detail', 'request_id', 'status', 'title', 'type']);
  const listed = new Set<string>();
  for (const { method, path, op } of operations(doc)) {
    t.ok(op.responses.default, `${method} ${path} has a default (500) response`);
    for (const [status, response] of Object.entries<Json>(op.responses)) {
      for (const [, code] of String(response.description).matchAll(/`([a-z_]+)`/g)) {
        if (!(code! in PROBLEMS)) continue;
        listed.add(code!);
        if (status !== 'default') t.equal(String(PROBLEMS[code as keyof typeof PROBLEMS].status), status, `${method} ${path}: ${code} under ${status}`);
      }
    }
  }
  // Codes that belong to no single operation: the router's and the HTTP server's own answers
  // (before any route is found: a request too slow, a URL or headers too large).
  const routerOnly = ['method_not_allowed', 'bad_request', 'conflict', 'request_timeout', 'uri_too_long', 'headers_too_large'];
  for (const code of Object.keys(PROBLEMS)) if (!routerOnly.includes(code)) t.ok(listed.has(code), `some operation lists ${code}`);
});

t.test('authenticated operations list 401, validated ones 400, and optional bodies are not required', async (t) => {
  const app = await build(t);
  const doc = await documentOf(app);
  for (const { method, path, op } of operations(doc)) {
    const secured = op.security && op.security.length > 0;
    if (secured && !path.startsWith('/api/v1/hooks/')) t.ok(op.responses['401'], `${method} ${path} lists 401`);
    if (op.requestBody || op.parameters?.length) t.match(op.responses['400']?.description ?? '', 'validation_failed', `${method} ${path} lists 400`);
  }
  t.equal(doc.paths['/api/v1/agent/deliveries/lease'].post.requestBody.required, false, 'the lease body may be left out');
  t.equal(doc.paths['/api/v1/agents'].post.requestBody.required, true);
  t.match(doc.paths['/api/v1/organizations'].post.responses['409'].description, 'slug_taken');
  t.match(doc.paths['/api/v1/agents/{id}'].delete.description, 'role: admin');
  t.match(doc.paths['/api/v1/agents/{id}'].get.description, 'role: any');
});

/** A small body that passes the operation's schema, so only authentication and roles decide. */
function example(schema: Json | undefined): unknown {
  if (!schema) return undefined;
  if (schema.default !== undefined) return schema.default;
  if (schema.enum) return schema.enum[0];
  if (schema.anyOf) return example(schema.anyOf[0]);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === 'object') {
    const keys: string[] = schema.required?.length ? schema.required : Object.keys(schema.properties ?? {}).slice(0, 1);
    return Object.fromEntries(keys.map((key) => [key, example(schema.properties[key])]));
  }
  if (type === 'string') return schema.format === 'uuid' ? randomUUID() : schema.format === 'date-time' ? new Date(Date.now() + 86_400_000).toISOString() : 'example';
  if (type === 'integer' || type === 'number') return schema.minimum ?? 0;
  if (type === 'boolean') return true;
  return undefined;
}

t.test('each operation enforces exactly the security and role the document declares', async (t) => {
  const app = await build(t);
  const doc = await documentOf(app);
  const org = await createOrg(app);
  const readOnly = await createKey(app, org.adminKey, 'read_only');
  const agent = await createAgent(app, org.adminKey);
  const hook = await createWebhook(app, org.adminKey);
  const schemes = new Set(Object.keys(doc.components.securitySchemes));
  for (const { method, path, op } of operations(doc)) {
    const name = `${method} ${path}`;
    const security: string[] = (op.security ?? []).flatMap((requirement: Json) => Object.keys(requirement));
    for (const scheme of security) t.ok(schemes.has(scheme), `${name}: scheme ${scheme} is defined`);
    const url = path.replace('{webhook_id}', hook.id).replace(/\{\w+\}/g, () => randomUUID());
    const body = op.requestBody ? example(op.requestBody.content['application/json']?.schema) : undefined;
    const send = (headers: Record<string, string>) =>
      app.inject({ method: method as 'GET', url, headers, remoteAddress: randomIpv6(), ...(body !== undefined ? { payload: body as object } : {}) });

    const anonymous = await send({});
    if (security.length === 0) {
      t.not(anonymous.statusCode, 401, `${name} is public`);
      t.not(anonymous.statusCode, 403, `${name} is public`);
    } else if (security.includes('metricsToken')) {
      t.equal(anonymous.statusCode, 403, `${name}: without METRICS_TOKEN, only loopback clients`);
      t.equal(anonymous.json().code, 'metrics_loopback_only');
    } else if (security.includes('hubSignature256')) {
      t.equal(anonymous.statusCode, 403, `${name} wants a signature`);
      t.equal(anonymous.json().code, 'signature_missing');
      t.equal((await send(bearer(org.adminKey))).json().code, 'signature_missing', `${name}: an API key is no signature`);
    } else {
      t.equal(anonymous.statusCode, 401, `${name} refuses anonymous callers`);
      t.equal(anonymous.json().code, 'unauthorized');
      const credentials: Record<string, Record<string, string>> = {
        platformAdmin: asAdmin,
        apiKey: bearer(org.adminKey),
        agentToken: bearer(agent.token),
      };
      for (const [scheme, headers] of Object.entries(credentials)) {
        const res = await send(headers);
        if (security.includes(scheme)) t.not(res.statusCode, 401, `${name} accepts ${scheme}`);
        else t.equal(res.statusCode, 401, `${name} refuses ${scheme}`);
      }
      if (security.includes('apiKey')) {
        const res = await send(bearer(readOnly.key));
        if (/role: admin/.test(op.description)) {
          t.equal(res.statusCode, 403, `${name} refuses a read_only key`);
          t.equal(res.json().code, 'forbidden');
        } else {
          t.notOk([401, 403].includes(res.statusCode), `${name} accepts a read_only key (${res.statusCode})`);
        }
      }
    }
  }
});

t.test('/docs is an HTML page whose assets all load from this server, under a CSP of its own', async (t) => {
  const app = await build(t);
  const page = await app.inject({ method: 'GET', url: '/docs' });
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], 'text/html');
  t.notMatch(page.body, /https?:\/\//, 'nothing from another origin');
  const csp = String(page.headers['content-security-policy']);
  t.match(csp, "script-src 'self'");
  t.notMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  t.match(csp, "frame-ancestors 'none'");
  const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
  t.ok(assets.some((asset) => asset.endsWith('swagger-ui-bundle.js')), 'the Swagger UI bundle is referenced');
  for (const asset of assets) {
    const res = await app.inject({ method: 'GET', url: asset });
    t.equal(res.statusCode, 200, `${asset} loads`);
    t.ok(res.body.length > 0, `${asset} has content`);
    if (asset.endsWith('.js')) t.match(res.headers['content-type'], 'javascript');
    if (asset.endsWith('.css')) t.match(res.headers['content-type'], 'text/css');
  }
  const initializer = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
  t.match(initializer.body, "resolveUrl('./json')", 'the page reads the document beside it');
  t.match(initializer.body, 'validatorUrl: null', 'and never sends it to an online validator');
  const missing = await app.inject({ method: 'GET', url: '/docs/static/nonexistent.js' });
  t.equal(missing.statusCode, 404, 'an asset that is not there is not found (its route exists: not a 405)');
  t.equal(missing.json().code, 'not_found');
  t.notOk(missing.headers.allow);
  const json = await app.inject({ method: 'GET', url: '/docs/json' });
  t.same(json.json(), (await app.inject({ method: 'GET', url: '/openapi.json' })).json(), '/docs/json is the same document');
  const api = await app.inject({ method: 'GET', url: '/healthz' });
  t.match(String(api.headers['content-security-policy']), "default-src 'none'", 'the API keeps its strict policy');
});
