// Requests: a route's valid-ish request (a draft), one with one to three things broken, and sending
// a draft through app.inject with its credential, signature and path filled in, under a deadline.
import { createHmac, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { asAdmin, asAgent, bearer, randomIpv6 } from '../../helper.js';
import { rawSignature } from '../signing.js';
import { ascii, badBody, badContentType, badField, badParam, FIELDS, HEADER_NAMES, junk, QUERY_KEYS } from './bad-values.js';
import { contextId, type Ctx, type Fresh } from './context.js';
import { ASSETS, type Kind, type Route } from './routes.js';
import { noBody, VALID_BODIES, VALID_QUERIES, type Body, type Query } from './valid-values.js';

const HANG_MS = 5000;

export type ParamValue = 'real' | 'REAL' | { text: string } | { raw: string };
type Credential = 'right' | 'none' | 'garbage' | 'read_only' | 'other_kind';

export interface Draft extends Body {
  params: ParamValue[];
  query: Query;
  /** Whether the run's fresh query (the OAuth callback's code and state) goes first. */
  fresh: boolean;
  headers: Record<string, string>;
  credential: Credential;
  /** How a webhook delivery is signed when the credential is right. */
  signature: 'hub' | 'standard';
  /** The client address (undefined: loopback for /metrics, a random IPv6 otherwise). */
  remote: string | undefined;
}

/** A request the route must accept: its credential, known query keys, the body its schema takes. */
export function validDraft(route: Route, ctx: Ctx): fc.Arbitrary<Draft> {
  const param = (name: string): fc.Arbitrary<ParamValue> =>
    name === '*' ? fc.constantFrom(...ASSETS).map((text) => ({ text })) : route.kind === 'webhook' ? fc.constant('real') : fc.constantFrom<ParamValue>('real', 'REAL');
  const body = route.hasBody ? (VALID_BODIES[route.spec]?.(ctx) ?? noBody) : noBody;
  const headers =
    route.kind === 'webhook'
      ? fc.option(fc.uuid(), { nil: undefined }).map((id): Record<string, string> => (id ? { 'x-github-delivery': id } : {}))
      : fc.option(fc.record({ 'x-request-id': fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), accept: fc.constantFrom('application/json', '*/*') }, { requiredKeys: [] }), { nil: {} });
  return fc.record({
    params: fc.tuple(...route.params.map(param)),
    query: VALID_QUERIES[route.spec] ?? fc.constant<Query>([]),
    fresh: fc.constant(true),
    body,
    headers,
    credential: fc.constant<Credential>('right'),
    signature: fc.constantFrom<Draft['signature']>('hub', 'standard'),
    remote: route.kind === 'metrics' ? fc.constantFrom('127.0.0.1', '::1', '::ffff:127.0.0.1', '127.8.9.10') : fc.constant(undefined),
  }).map(({ body: b, ...rest }) => ({ ...rest, ...b }));
}

type Mutation =
  | { kind: 'credential'; to: Exclude<Credential, 'right'> }
  | { kind: 'param'; index: number; to: ParamValue }
  | { kind: 'query'; add: Query }
  | { kind: 'body'; to: string | Buffer | undefined }
  | { kind: 'field'; key: string; to: unknown }
  | { kind: 'contentType'; to: string | undefined }
  | { kind: 'headers'; add: Record<string, string> }
  | { kind: 'remote'; to: string; proxied: boolean }
  | { kind: 'dropFresh' };

/** One to three things to break in a valid request; body changes most often where there is a body. */
function mutations(route: Route): fc.Arbitrary<Mutation[]> {
  const options: fc.WeightedArbitrary<Mutation>[] = [
    { weight: 1, arbitrary: fc.constantFrom('none', 'garbage', 'read_only', 'other_kind').map((to) => ({ kind: 'credential' as const, to })) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 6 })), junk), { minLength: 1, maxLength: 4 }).map((add) => ({ kind: 'query' as const, add })) },
    { weight: 1, arbitrary: badContentType.map((to) => ({ kind: 'contentType' as const, to })) },
    { weight: 1, arbitrary: fc.dictionary(fc.constantFrom(...HEADER_NAMES), junk.map(ascii), { minKeys: 1, maxKeys: 3 }).map((add) => ({ kind: 'headers' as const, add })) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('remote' as const), to: fc.constantFrom('203.0.113.7', '2001:db8::1', '10.0.0.1', '127.0.0.1', '::1'), proxied: fc.boolean() }),
    },
  ];
  if (route.params.length > 0) {
    options.push({ weight: 2, arbitrary: fc.record({ kind: fc.constant('param' as const), index: fc.nat({ max: route.params.length - 1 }), to: badParam }) });
  }
  if (route.hasBody) {
    options.push({ weight: 3, arbitrary: badBody.map((to) => ({ kind: 'body' as const, to })) });
    options.push({ weight: 3, arbitrary: fc.record({ kind: fc.constant('field' as const), key: fc.constantFrom(...FIELDS), to: badField }) });
  }
  if (route.url === '/api/v1/oauth/google/callback') options.push({ weight: 1, arbitrary: fc.constant({ kind: 'dropFresh' as const }) });
  return fc.array(fc.oneof(...options), { minLength: 1, maxLength: 3 });
}

/** The JSON object in `body` (or a new one) with `key` set to `value`. */
function withField(body: Draft['body'], key: string, value: unknown): string {
  let object: Record<string, unknown> = {};
  try {
    const parsed: unknown = typeof body === 'string' ? JSON.parse(body) : null;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) object = parsed as Record<string, unknown>;
  } catch {
    // not JSON: the field goes into a new object
  }
  // A computed key makes even __proto__ an own property, which JSON.stringify writes out.
  try {
    return JSON.stringify({ ...object, [key]: value });
  } catch {
    // nested too deep to write out again: the field alone
    return JSON.stringify({ [key]: value });
  }
}

function mutate(draft: Draft, change: Mutation): Draft {
  switch (change.kind) {
    case 'credential':
      return { ...draft, credential: change.to };
    case 'param':
      return { ...draft, params: draft.params.map((value, i) => (i === change.index ? change.to : value)) };
    case 'query':
      return { ...draft, query: [...draft.query, ...change.add] };
    case 'body':
      return { ...draft, body: change.to };
    case 'field':
      return { ...draft, body: withField(draft.body, change.key, change.to), contentType: draft.contentType ?? 'application/json' };
    case 'contentType':
      return { ...draft, contentType: change.to };
    case 'headers':
      return { ...draft, headers: { ...draft.headers, ...change.add } };
    case 'remote':
      return { ...draft, remote: change.to, headers: change.proxied ? { ...draft.headers, 'x-forwarded-for': '127.0.0.1' } : draft.headers };
    case 'dropFresh':
      return { ...draft, fresh: false };
  }
}

export const badDraft = (route: Route, ctx: Ctx): fc.Arbitrary<Draft> =>
  fc.tuple(validDraft(route, ctx), mutations(route)).map(([draft, changes]) => changes.reduce(mutate, { ...draft, echoes: [] }));

function credentials(kind: Kind, choice: Credential, ctx: Ctx): Record<string, string> {
  switch (choice) {
    case 'right':
      return { public: {}, metrics: {}, webhook: {}, platform: asAdmin, org: bearer(ctx.adminKey), agent: asAgent(ctx.agent.token) }[kind];
    case 'garbage':
      return kind === 'webhook' ? { 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` } : { authorization: 'Bearer sbk_garbage', 'x-agent-token': 'sba_garbage' };
    case 'read_only':
      return bearer(ctx.readOnlyKey);
    case 'other_kind':
      return kind === 'agent' ? bearer(ctx.adminKey) : asAgent(ctx.agent.token);
    case 'none':
      return {};
  }
}

/** The signature headers of a delivery signed with the webhook's secret, over the exact bytes sent. */
function signed(secret: string, draft: Draft): Record<string, string> {
  const bytes = draft.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(draft.body) ? draft.body : Buffer.from(draft.body);
  if (draft.signature === 'hub') return { 'x-hub-signature-256': rawSignature(secret, bytes) };
  const id = draft.headers['webhook-id'] ?? `msg_${randomUUID()}`;
  const at = new Date();
  const seconds = Math.floor(at.getTime() / 1000);
  // The reference library signs a Buffer as its UTF-8 decoding: bytes are signed here, as the spec says.
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const signature =
    typeof draft.body === 'string'
      ? new StandardWebhook(secret).sign(id, at, draft.body)
      : `v1,${createHmac('sha256', key).update(`${id}.${seconds}.`).update(bytes).digest('base64')}`;
  return { 'webhook-id': id, 'webhook-timestamp': String(seconds), 'webhook-signature': signature };
}

// encodeURIComponent throws on lone surrogates; a client would send U+FFFD (or raw bytes, below).
const encode = (value: string) => encodeURIComponent(value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'));

function pathOf(route: Route, draft: Draft, ctx: Ctx, fresh: Fresh): string {
  let i = 0;
  return route.url.replace(/:(\w+)|\*/g, (_, name: string | undefined) => {
    const value = draft.params[i++]!;
    if (typeof value === 'object') return 'raw' in value ? value.raw : encode(value.text);
    const id = fresh.ids?.[name ?? '*'] ?? contextId(route, name ?? '*', ctx);
    return encode(value === 'REAL' ? id.toUpperCase() : id);
  });
}

export const withDeadline = <T>(promise: Promise<T>, what: string): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms: ${what}`)), HANG_MS).unref())]);

/** Sends the draft as the route's request; the answer and what was sent, for messages. */
export async function send(app: FastifyInstance, route: Route, ctx: Ctx, draft: Draft, fresh: Fresh): Promise<{ res: LightMyRequestResponse; sent: string }> {
  const pairs = [...(draft.fresh ? (fresh.query ?? []) : []), ...draft.query];
  const url = pathOf(route, draft, ctx, fresh) + (pairs.length > 0 ? `?${pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')}` : '');
  const headers: Record<string, string> = { ...draft.headers, ...credentials(route.kind, draft.credential, ctx) };
  if (draft.contentType !== undefined) headers['content-type'] = draft.contentType;
  if (route.kind === 'webhook' && draft.credential === 'right') {
    if (draft.signature === 'hub') delete headers['webhook-signature'];
    Object.assign(headers, signed(ctx.hook.secret, draft));
  }
  const remoteAddress = draft.remote ?? (route.kind === 'metrics' ? '127.0.0.1' : randomIpv6());
  const payload = draft.body === undefined ? {} : { payload: draft.body };
  const res = await withDeadline(app.inject({ method: route.method as 'GET', url, headers, remoteAddress, ...payload }), `${route.method} ${url}`);
  const body = draft.body === undefined ? '' : ` body ${JSON.stringify(Buffer.isBuffer(draft.body) ? `<${draft.body.length} bytes>` : draft.body.slice(0, 300))}`;
  return { res, sent: `${route.method} ${url.slice(0, 300)}${body}` };
}
