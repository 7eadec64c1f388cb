// GET /healthz is answered by the HTTP server itself, before Fastify. A liveness probe needs no
// routing, hooks, validation or serialization, orchestrators and load balancers send many of
// them, and through Fastify a probe cost about twice the CPU of a bare server's answer (see
// docs/operations/README.md#where-the-time-goes). The answer is assembled once from the parts
// every Fastify answer gets (security headers, Cache-Control, a request id) and counted in the
// same request histogram; test/health/liveness-fast-path.test.ts compares it with the route's
// answer header by header.
// Anything out of the ordinary goes to Fastify as before: another method or URL (a query string
// too), an Origin header (CORS), probe logging switched on, or a server that is closing (Fastify
// then answers 503 and closes the connection). The route stays registered for those, for
// app.inject() and for the OpenAPI document.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { requestId } from './http.js';
import { API_SECURITY_HEADERS } from './security-headers.js';

const LIVENESS_PATH = '/healthz';
/** What the /healthz route answers (routes/health), serialized. */
const LIVENESS_BODY = JSON.stringify({ status: 'ok' });

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

export default fp<{ config: Config }>(
  async (app, { config }) => {
    // Probes that must be logged take the route, where the request log is written.
    if (config.requestLogIncludeHealth) return;

    const fixedHeaders: string[] = [];
    for (const [name, value] of Object.entries(API_SECURITY_HEADERS)) fixedHeaders.push(name, value);
    fixedHeaders.push('content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(Buffer.byteLength(LIVENESS_BODY)));

    const listeners = app.server.listeners('request') as RequestListener[];
    if (listeners.length !== 1) throw new Error(`expected Fastify's one request listener on the HTTP server, found ${listeners.length}`);
    const fastify = listeners[0]!;
    app.server.removeListener('request', fastify);
    app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      if (request.url !== LIVENESS_PATH || request.method !== 'GET' || app.isClosing() || request.headers.origin !== undefined) {
        fastify(request, response);
        return;
      }
      const started = performance.now();
      response.writeHead(200, [...fixedHeaders, 'x-request-id', requestId(request)]);
      response.end(LIVENESS_BODY);
      app.metrics.requestServed('GET', LIVENESS_PATH, 200, (performance.now() - started) / 1000);
    });
  },
  { name: 'liveness-fast-path', dependencies: ['metrics', 'http'] },
);
