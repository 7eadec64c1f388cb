// Prometheus metrics. Each app instance has its own registry (tests build many apps in one
// process), decorated as `app.metrics` with typed methods that plugins and routes call on their
// events; label values come from small fixed sets, never from ids or tokens. Process facts (CPU,
// memory, GC, event-loop lag) belong to the process, so they are collected once per process and
// appended to every app's exposition.
import fp from 'fastify-plugin';
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { LimiterName } from './rate-limit.js';
import { RequestHistogram, type HistogramChild } from './request-histogram.js';

export type WebhookOutcome = 'accepted' | 'duplicate';
export type BrokerSource = 'cached' | 'refreshed';
export type RefreshFailure = 'invalid_grant' | 'unavailable';

export interface Metrics {
  readonly contentType: string;
  /** The Prometheus text exposition: this app's metrics, then the process's. */
  exposition(): Promise<string>;
  rateLimitRejected(limiter: LimiterName): void;
  /** Rate limits fell back from Redis to this process's memory (at start-up or later). */
  rateLimitFellBack(): void;
  /** Whether rate-limit counters are currently shared through Redis. */
  rateLimitShared(shared: boolean): void;
  webhookDelivered(outcome: WebhookOutcome): void;
  /** An ingest request answered with an error; `reason` is its problem code. */
  webhookRejected(reason: string): void;
  webhookSignatureFailed(reason: string): void;
  agentAuthFailed(reason: string): void;
  apiKeyAuthFailed(reason: string): void;
  adminAuthFailed(reason: string): void;
  oauthRefreshSucceeded(): void;
  oauthRefreshFailed(reason: RefreshFailure): void;
  brokerIssued(source: BrokerSource): void;
  /** One answered request, for the duration histogram (called by the onResponse hook and the liveness fast path). */
  requestServed(method: string, route: string, status: number, seconds: number): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

/** The route label of requests no route matched: one series, whatever the URL. */
export const UNMATCHED_ROUTE = '(unmatched)';

const LIMITERS: LimiterName[] = ['agentAuth', 'agent', 'webhook'];
const AGENT_AUTH_REASONS = ['missing_credentials', 'malformed_token', 'unknown_token', 'invalid_secret', 'expired_token'];
const API_KEY_AUTH_REASONS = ['missing_credentials', 'malformed_key', 'unknown_key', 'invalid_secret', 'revoked_key', 'expired_key'];
const SIGNATURE_REASONS = ['signature_missing', 'signature_invalid', 'timestamp_out_of_tolerance'];

let processRegistry: Registry | undefined;

/** Default process metrics, registered once per process: their collectors cannot be stopped. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Children bound once per label value, so the hot path does no label validation or merging. */
function bindOne<T extends string>(metric: Counter<T>, label: T, initial: readonly string[] = []) {
  const children = new Map<string, Counter.Internal>();
  const child = (value: string) => {
    let bound = children.get(value);
    if (!bound) {
      bound = metric.labels({ [label]: value } as Record<T, string>);
      children.set(value, bound);
    }
    return bound;
  };
  // Series that exist from the start at 0, so increase() sees their first event.
  for (const value of initial) child(value).inc(0);
  return (value: string) => child(value).inc();
}

export default fp(
  async (app) => {
    const registry = new Registry();
    const registers = [registry];
    const processes = processMetrics();

    const requests = new RequestHistogram(
      'switchboard_http_request_duration_seconds',
      'HTTP requests by method, route template and status code, and how long they took.',
      ['method', 'route', 'status'],
    );
    // The registry only calls get() (and reset()), which RequestHistogram has; its types want a prom-client class.
    registry.registerMetric(requests as unknown as Metric);
    const rateLimitRejections = new Counter({
      name: 'switchboard_rate_limit_rejections_total',
      help: 'Requests answered 429 rate_limited, by limiter.',
      labelNames: ['limiter'] as const,
      registers,
    });
    const rateLimitFallbacks = new Counter({
      name: 'switchboard_rate_limit_fallbacks_total',
      help: 'Times rate limits fell back from Redis to per-process counting (Redis unreachable).',
      registers,
    });
    const rateLimitShared = new Gauge({
      name: 'switchboard_rate_limit_shared',
      help: '1 while rate-limit counters are shared through Redis, 0 while counted per process.',
      registers,
    });
    const webhookDeliveries = new Counter({
      name: 'switchboard_webhook_deliveries_total',
      help: 'Webhook ingest requests by outcome (accepted, duplicate, rejected); rejected ones by reason (the problem code).',
      labelNames: ['outcome', 'reason'] as const,
      registers,
    });
    const signatureFailures = new Counter({
      name: 'switchboard_webhook_signature_failures_total',
      help: 'Webhook deliveries whose signature did not verify, by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    const agentAuthFailures = new Counter({
      name: 'switchboard_agent_auth_failures_total',
      help: 'Failed agent authentications, by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    const apiKeyAuthFailures = new Counter({
      name: 'switchboard_api_key_auth_failures_total',
      help: 'Failed organization API key authentications, by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    const adminAuthFailures = new Counter({
      name: 'switchboard_admin_auth_failures_total',
      help: 'Failed platform admin token authentications, by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    const oauthRefreshes = new Counter({
      name: 'switchboard_oauth_refreshes_total',
      help: 'Google access-token refreshes by outcome (success, failure); failures by reason (invalid_grant, unavailable).',
      labelNames: ['outcome', 'reason'] as const,
      registers,
    });
    const brokerIssuances = new Counter({
      name: 'switchboard_broker_issuances_total',
      help: 'Google access tokens handed to agents, by source (cached, refreshed).',
      labelNames: ['source'] as const,
      registers,
    });
    const poolMax = new Gauge({
      name: 'switchboard_db_pool_max_connections',
      help: 'Database connections this instance may open (DATABASE_POOL_MAX; 1 for the embedded database).',
      labelNames: ['driver'] as const,
      registers,
    });
    poolMax.set({ driver: app.database.kind }, app.database.poolMax);

    const rejectedBy = bindOne(rateLimitRejections, 'limiter', LIMITERS);
    rateLimitFallbacks.inc(0);
    rateLimitShared.set(0);
    const delivered = { accepted: webhookDeliveries.labels({ outcome: 'accepted' }), duplicate: webhookDeliveries.labels({ outcome: 'duplicate' }) };
    delivered.accepted.inc(0);
    delivered.duplicate.inc(0);
    const rejectedChildren = new Map<string, Counter.Internal>();
    const signatureFailed = bindOne(signatureFailures, 'reason', SIGNATURE_REASONS);
    const agentAuthFailed = bindOne(agentAuthFailures, 'reason', AGENT_AUTH_REASONS);
    const apiKeyAuthFailed = bindOne(apiKeyAuthFailures, 'reason', API_KEY_AUTH_REASONS);
    const adminAuthFailed = bindOne(adminAuthFailures, 'reason', ['missing_credentials', 'invalid_admin_token']);
    const refreshed = oauthRefreshes.labels({ outcome: 'success' });
    refreshed.inc(0);
    const refreshFailed = {
      invalid_grant: oauthRefreshes.labels({ outcome: 'failure', reason: 'invalid_grant' }),
      unavailable: oauthRefreshes.labels({ outcome: 'failure', reason: 'unavailable' }),
    };
    refreshFailed.invalid_grant.inc(0);
    refreshFailed.unavailable.inc(0);
    const issued = { cached: brokerIssuances.labels({ source: 'cached' }), refreshed: brokerIssuances.labels({ source: 'refreshed' }) };
    issued.cached.inc(0);
    issued.refreshed.inc(0);

    // route → method → status → bound histogram child: three map lookups per request.
    const requestChildren = new Map<string, Map<string, Map<number, HistogramChild>>>();
    const requestChild = (method: string, route: string, status: number) => {
      let byMethod = requestChildren.get(route);
      if (!byMethod) requestChildren.set(route, (byMethod = new Map()));
      let byStatus = byMethod.get(method);
      if (!byStatus) byMethod.set(method, (byStatus = new Map()));
      let child = byStatus.get(status);
      if (!child) byStatus.set(status, (child = requests.child(method, route, String(status))));
      return child;
    };

    const requestServed = (method: string, route: string, status: number, seconds: number) => requestChild(method, route, status).observe(seconds);

    // Synchronous: no promise per request on the hot path.
    app.addHook('onResponse', (request, reply, done) => {
      requestServed(request.method, request.routeOptions.url ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000);
      done();
    });

    app.decorate('metrics', {
      contentType: registry.contentType,
      async exposition() {
        const [own, shared] = await Promise.all([registry.metrics(), processes.metrics()]);
        return `${own}\n${shared}`;
      },
      rateLimitRejected: rejectedBy,
      rateLimitFellBack: () => rateLimitFallbacks.inc(),
      rateLimitShared: (shared: boolean) => rateLimitShared.set(shared ? 1 : 0),
      webhookDelivered: (outcome: WebhookOutcome) => delivered[outcome].inc(),
      webhookRejected(reason: string) {
        let child = rejectedChildren.get(reason);
        if (!child) rejectedChildren.set(reason, (child = webhookDeliveries.labels({ outcome: 'rejected', reason })));
        child.inc();
      },
      webhookSignatureFailed: signatureFailed,
      agentAuthFailed,
      apiKeyAuthFailed,
      adminAuthFailed,
      oauthRefreshSucceeded: () => refreshed.inc(),
      oauthRefreshFailed: (reason: RefreshFailure) => refreshFailed[reason].inc(),
      brokerIssued: (source: BrokerSource) => issued[source].inc(),
      requestServed,
    } satisfies Metrics);
  },
  { name: 'metrics', dependencies: ['database'] },
);
