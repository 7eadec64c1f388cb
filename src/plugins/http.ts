// HTTP hygiene for a JSON API: request ids, security headers, no caching, an explicit CORS allowlist.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import cors from '@fastify/cors';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { API_SECURITY_HEADERS } from './security-headers.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

// Text Postgres cannot store: NUL, and UTF-16 surrogates without their pair (JSON can carry both
// as \u escapes). Refused at the door, so no route reaches the database with it and gets a 500.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** The JSON pointer of the first key or string in `value` that Postgres cannot store, or null. */
function unstorableText(value: unknown): string | null {
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length > 0) {
    const [current, path] = stack.pop()!;
    if (typeof current === 'string') {
      if (UNSTORABLE.test(current)) return path;
    } else if (Array.isArray(current)) {
      current.forEach((item, index) => stack.push([item, `${path}/${index}`]));
    } else if (current !== null && typeof current === 'object' && !Buffer.isBuffer(current)) {
      for (const [key, item] of Object.entries(current)) {
        if (UNSTORABLE.test(key)) return path;
        stack.push([item, `${path}/${escapePointer(key)}`]);
      }
    }
  }
  return null;
}

/** Echoes a well-formed incoming X-Request-Id (so ids follow a request across services), else a UUID. */
export function requestId(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

declare module 'fastify' {
  interface FastifyInstance {
    /** True once app.close() has begun: answers end their connection, probes go through Fastify. */
    isClosing(): boolean;
  }
}

export default fp<{ config: Config }>(
  async (app, { config }) => {
    // Synchronous, first of all hooks: even a request refused by authentication carries them.
    app.addHook('onRequest', (_request, reply, done) => {
      reply.headers(API_SECURITY_HEADERS);
      done();
    });
    if (config.corsOrigins.length > 0) {
      const corsOptions = {
        origin: config.corsOrigins,
        methods: ['GET', 'POST', 'PATCH', 'DELETE'],
        allowedHeaders: ['authorization', 'content-type', 'x-agent-token', 'x-request-id', 'idempotency-key'],
        exposedHeaders: ['x-request-id', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'],
        maxAge: 600,
      };
      // An OPTIONS request that is not a preflight (no Origin or no Access-Control-Request-Method)
      // is an ordinary request: it gets the 405 or 404 problem any other method would, not CORS.
      const notCors = { origin: false };
      await app.register(cors, {
        delegator: (request, callback) => {
          const preflight = request.method !== 'OPTIONS' || (request.headers.origin !== undefined && request.headers['access-control-request-method'] !== undefined);
          callback(null, preflight ? corsOptions : notCors);
        },
      });
    }
    app.addHook('preValidation', (request, _reply, done) => {
      for (const [location, value] of [['body', request.body], ['querystring', request.query], ['params', request.params]] as const) {
        const path = unstorableText(value);
        if (path !== null) {
          done(
            new AppError('validation_failed', {
              detail: 'The request is invalid; see errors',
              extensions: { errors: [{ location, path, message: 'must not contain NUL characters or unpaired UTF-16 surrogates' }] },
            }),
          );
          return;
        }
      }
      done();
    });
    // Once the server is closing, responses end their keep-alive connection, so requests that
    // were in flight do not hold the process open until the keep-alive timeout.
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
    });
    app.decorate('isClosing', () => closing);
    app.addHook('onSend', (request, reply, payload, done) => {
      reply.header('x-request-id', request.id);
      if (closing) reply.header('connection', 'close');
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
      done(null, payload);
    });
  },
  { name: 'http' },
);
