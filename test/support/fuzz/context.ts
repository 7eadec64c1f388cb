// What each route's runs act on: an organization, keys, an agent, a webhook, a leased delivery (and
// a connected Google account where needed), plus a fresh resource per run for routes that use one up.
import type { FastifyInstance } from 'fastify';
import { asAgent, bearer, createAgent, createKey, createOrg, createWebhook, randomIpv6 } from '../../helper.js';
import type { FakeGoogle } from '../fake-google.js';
import { rawSignature } from '../signing.js';
import { ASSETS, type Route } from './routes.js';

export interface Ctx {
  orgId: string;
  adminKey: string;
  readOnlyKey: string;
  spareKeyId: string;
  agent: { id: string; token: string };
  hook: { id: string; secret: string; url: string };
  /** A delivery of `hook`, leased by `agent`. */
  deliveryId: string;
}

/** Routes whose context has a connected Google account. */
export const NEEDS_GOOGLE = new Set(['POST /api/v1/agent/credentials/google/token', 'GET /api/v1/oauth/status']);

/** A signed delivery to `hook`: its id. */
async function ingest(app: FastifyInstance, hook: Ctx['hook']): Promise<string> {
  const body = '{"fuzz":true}';
  const headers = { 'content-type': 'application/json', 'x-hub-signature-256': rawSignature(hook.secret, Buffer.from(body)) };
  const res = await app.inject({ method: 'POST', url: hook.url, headers, payload: body, remoteAddress: randomIpv6() });
  if (res.statusCode !== 202) throw new Error(`ingest: ${res.statusCode} ${res.body}`);
  return res.json().delivery_id;
}

/** Leases what is pending for the agent; `deliveryId` must be among it. */
async function lease(app: FastifyInstance, agentToken: string, deliveryId: string): Promise<void> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(agentToken), payload: { limit: 100 } });
  if (res.statusCode !== 200 || !res.json().data.some((d: { id: string }) => d.id === deliveryId)) throw new Error(`lease: ${res.statusCode} ${res.body.slice(0, 300)}`);
}

/** Start → consent at (fake) Google: the code and state Google sends the browser back with. */
async function consented(app: FastifyInstance, google: FakeGoogle, adminKey: string): Promise<Array<[string, string]>> {
  const res = await app.inject({ method: 'GET', url: '/api/v1/oauth/google/start?redirect=false', headers: bearer(adminKey) });
  if (res.statusCode !== 200) throw new Error(`oauth start: ${res.statusCode} ${res.body}`);
  return [...new URL(google.consent(res.json().authorization_url)).searchParams.entries()];
}

async function connectGoogle(app: FastifyInstance, google: FakeGoogle, adminKey: string): Promise<void> {
  const query = new URLSearchParams(await consented(app, google, adminKey));
  const res = await app.inject({ method: 'GET', url: `/api/v1/oauth/google/callback?${query}` });
  if (res.statusCode !== 200) throw new Error(`oauth callback: ${res.statusCode} ${res.body}`);
}

export async function context(app: FastifyInstance, google: FakeGoogle, options: { connectGoogle: boolean }): Promise<Ctx> {
  const org = await createOrg(app);
  const agent = await createAgent(app, org.adminKey);
  const hook = await createWebhook(app, org.adminKey, { agent_id: agent.id });
  const deliveryId = await ingest(app, hook);
  await lease(app, agent.token, deliveryId);
  if (options.connectGoogle) await connectGoogle(app, google, org.adminKey);
  return {
    orgId: org.id,
    adminKey: org.adminKey,
    readOnlyKey: (await createKey(app, org.adminKey, 'read_only')).key,
    spareKeyId: (await createKey(app, org.adminKey, 'read_only')).id,
    agent,
    hook,
    deliveryId,
  };
}

/** What a run acts on when it is not the context's own: path ids, query pairs. */
export interface Fresh {
  ids?: Record<string, string>;
  query?: Array<[string, string]>;
}

type Freshen = (app: FastifyInstance, google: FakeGoogle, ctx: Ctx) => Promise<Fresh>;
const freshAgent: Freshen = async (app, _google, ctx) => ({ ids: { id: (await createAgent(app, ctx.adminKey)).id } });
const freshHook: Freshen = async (app, _google, ctx) => ({ ids: { id: (await createWebhook(app, ctx.adminKey)).id } });
const freshLease: Freshen = async (app, _google, ctx) => {
  const id = await ingest(app, ctx.hook);
  await lease(app, ctx.agent.token, id);
  return { ids: { id } };
};

/** Routes that delete, rotate or consume what they act on: a fresh one for every run. */
export const FRESH: Record<string, Freshen> = {
  'DELETE /api/v1/organizations/:id': async (app) => ({ ids: { id: (await createOrg(app)).id } }),
  'DELETE /api/v1/api-keys/:id': async (app, _google, ctx) => ({ ids: { id: (await createKey(app, ctx.adminKey, 'read_only')).id } }),
  'DELETE /api/v1/agents/:id': freshAgent,
  'POST /api/v1/agents/:id/token': freshAgent,
  'DELETE /api/v1/webhooks/:id': freshHook,
  'POST /api/v1/webhooks/:id/secret': freshHook,
  'POST /api/v1/agent/deliveries/:id/ack': freshLease,
  'POST /api/v1/agent/deliveries/:id/nack': freshLease,
  'GET /api/v1/oauth/google/callback': async (app, google, ctx) => ({ query: await consented(app, google, ctx.adminKey) }),
  'DELETE /api/v1/oauth/google': async (app, google, ctx) => {
    await connectGoogle(app, google, ctx.adminKey);
    return {};
  },
};

/** The context's own resource a path parameter names. */
export function contextId(route: Route, name: string, ctx: Ctx): string {
  if (name === '*') return ASSETS[0]!;
  if (name === 'delivery_id' || route.url.startsWith('/api/v1/agent/deliveries/')) return ctx.deliveryId;
  if (name === 'webhook_id' || route.url.startsWith('/api/v1/webhooks/')) return ctx.hook.id;
  if (route.url.startsWith('/api/v1/organizations/')) return ctx.orgId;
  if (route.url.startsWith('/api/v1/api-keys/')) return ctx.spareKeyId;
  if (route.url.startsWith('/api/v1/agents/')) return ctx.agent.id;
  throw new Error(`${route.key}: no id known for ${name}; add it to contextId()`);
}
