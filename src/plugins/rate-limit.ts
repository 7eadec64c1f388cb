// Rate limits, shared by every instance through Redis when REDIS_URL is set, per process
// otherwise. If Redis stops answering, limits fall back to this process's memory (logged), and
// return to Redis when it answers again — the API keeps serving either way.
import { createRequire } from 'node:module';
import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';

const require = createRequire(import.meta.url);

type Callback = (err: Error | null, result?: { current: number; ttl: number }) => void;
interface Store {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void;
  child(options: unknown): Store;
}

export type LimiterName = 'agentAuth' | 'agent' | 'webhook';

export interface Limiters {
  /** Counts one hit for `request` against the named limit; throws 429 rate_limited when over it. */
  hit(name: LimiterName, request: FastifyRequest): Promise<void>;
  /** Whether Redis is configured and currently used (false while falling back to memory). */
  readonly shared: boolean;
  /** A Redis round-trip now: null when REDIS_URL is not set. */
  redisReachable(): Promise<boolean | null>;
}

declare module 'fastify' {
  interface FastifyInstance {
    limiters: Limiters;
  }
}

/** A store that uses Redis and, while Redis fails, the process-local store. */
function fallbackStoreClass(app: FastifyInstance, redis: Redis, state: { usingRedis: boolean }, RedisStore: any, LocalStore: any) {
  return class FallbackStore implements Store {
    private readonly redisStore: Store;
    private readonly localStore: Store;
    constructor(options: { continueExceeding: boolean; exponentialBackoff: boolean }) {
      this.redisStore = new RedisStore(options.continueExceeding, options.exponentialBackoff, redis, 'switchboard:rl:');
      this.localStore = new LocalStore(options.continueExceeding, options.exponentialBackoff);
    }
    incr(key: string, cb: Callback, timeWindow: number, max: number) {
      this.redisStore.incr(
        key,
        (err, result) => {
          if (!err) {
            if (!state.usingRedis) {
              app.log.info('Redis answers again: rate limits are shared across instances');
              app.metrics.rateLimitShared(true);
            }
            state.usingRedis = true;
            cb(null, result);
            return;
          }
          if (state.usingRedis) {
            app.log.warn({ err }, 'Redis unavailable: rate limits fall back to this process until it returns');
            app.metrics.rateLimitFellBack();
            app.metrics.rateLimitShared(false);
          }
          state.usingRedis = false;
          this.localStore.incr(key, cb, timeWindow, max);
        },
        timeWindow,
        max,
      );
    }
    child() {
      return this;
    }
  };
}

export default fp<{ config: Config }>(
  async (app, { config }) => {
    const state = { usingRedis: config.redisUrl !== undefined };
    let store: unknown;
    let redisClient: Redis | undefined;
    if (config.redisUrl) {
      const redis = new Redis(config.redisUrl, {
        // Fail fast instead of queueing while Redis is away: the fallback takes over.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 500,
        connectTimeout: 2000,
        lazyConnect: false,
        retryStrategy: (times) => Math.min(times * 200, 2000),
      });
      redis.on('error', () => {}); // reported through the store's fallback log line
      redisClient = redis;
      // Start with shared limits when Redis is there; otherwise start in fallback and say so.
      const ready = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 2000);
        redis.once('ready', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (ready) {
        app.metrics.rateLimitShared(true);
      } else {
        state.usingRedis = false;
        app.log.warn('Redis is not reachable at start-up: rate limits are per process until it is');
        app.metrics.rateLimitFellBack();
      }
      app.addHook('onClose', async () => {
        redis.disconnect();
      });
      // The plugin's own stores, wrapped; they are CommonJS files without type declarations.
      const RedisStore = require('@fastify/rate-limit/store/RedisStore.js');
      const LocalStore = require('@fastify/rate-limit/store/LocalStore.js');
      store = fallbackStoreClass(app, redis, state, RedisStore, LocalStore);
    }
    await app.register(rateLimit, { global: false, ...(store ? { store: store as never } : {}) });

    const ip = (request: FastifyRequest) => request.ip;
    const agentId = (request: FastifyRequest) => (request.principal?.type === 'agent' ? request.principal.agentId : `ip:${request.ip}`);
    const checks = {
      agentAuth: app.createRateLimit({
        max: config.rateLimitAgentAuthMax,
        timeWindow: config.rateLimitAgentAuthWindowS * 1000,
        keyGenerator: (request) => `agent-auth:${ip(request)}`,
      }),
      webhook: app.createRateLimit({
        max: config.rateLimitWebhookMax,
        timeWindow: config.rateLimitWebhookWindowS * 1000,
        keyGenerator: (request) => `webhook:${ip(request)}`,
      }),
      agent: app.createRateLimit({
        max: config.rateLimitAgentMax,
        timeWindow: config.rateLimitAgentWindowS * 1000,
        keyGenerator: (request) => `agent:${agentId(request)}`,
      }),
    };

    app.decorate('limiters', {
      async hit(name: LimiterName, request: FastifyRequest) {
        const result = await checks[name](request);
        if (result.isAllowed || !result.isExceeded) return;
        request.log.warn({ limiter: name }, 'rate limit exceeded');
        app.metrics.rateLimitRejected(name);
        // Counted durably (aggregated per source) so status endpoints see rejections of every instance.
        const principal = request.principal;
        app.auditFailures.add({
          organizationId: principal && principal.type !== 'platform_admin' ? principal.organizationId : null,
          action: 'rate_limit.exceeded',
          clientIp: request.ip,
          credentialId: principal?.type === 'agent' ? principal.agentId : null,
          reason: name,
          requestId: request.id,
        });
        throw new AppError('rate_limited', {
          detail: `Too many requests; retry in ${result.ttlInSeconds} seconds`,
          headers: {
            'retry-after': String(Math.max(1, result.ttlInSeconds)),
            'ratelimit-limit': String(result.max),
            'ratelimit-remaining': '0',
            'ratelimit-reset': String(Math.max(1, result.ttlInSeconds)),
          },
          extensions: { limiter: name },
        });
      },
      get shared() {
        return state.usingRedis;
      },
      async redisReachable() {
        if (!redisClient) return null;
        try {
          return (await redisClient.ping()) === 'PONG';
        } catch {
          return false;
        }
      },
    });
  },
  { name: 'rate-limit', dependencies: ['metrics', 'audit'] },
);
