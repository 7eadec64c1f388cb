// The one place errors become responses: RFC 9457 problem+json with a stable `code` and the
// request id. Unknown errors are logged and answered 500 without internals.
import type { Socket } from 'node:net';
import fp from 'fastify-plugin';
import FindMyWay from 'find-my-way';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, PROBLEMS, codeForStatus, problemType, type ProblemCode } from '../errors.js';
import { KeyringError } from '../crypto/keyring.js';
import { DEADLOCK_DETECTED, FOREIGN_KEY_VIOLATION, isDatabaseUnavailable, SERIALIZATION_FAILURE, sqlState } from '../db/errors.js';
import { dropLateAnswers } from './deadline.js';

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const PROBLEM_CODES = Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]];

/** The one error body, as the OpenAPI document describes it (sendProblem below writes it). */
export const ProblemSchema = z
  .looseObject({
    type: z.string().describe('urn:switchboard:problem:<code>'),
    title: z.string().describe('Human-readable summary of the code; do not branch on it'),
    status: z.number().int(),
    detail: z.string().describe('Human-readable explanation of this occurrence'),
    code: z.enum(PROBLEM_CODES).describe('Stable, machine-readable: branch on this'),
    request_id: z.string().describe('The X-Request-Id of the request, also in the server log'),
    errors: z
      .array(z.object({ location: z.enum(['body', 'querystring', 'params', 'headers']), path: z.string(), message: z.string() }))
      .optional()
      .describe('validation_failed: each problem with the request'),
    limiter: z.string().optional().describe('rate_limited: which limit was exceeded'),
  })
  .describe('RFC 9457 problem details (application/problem+json); extension members may be added');

/** Seconds a client should wait before retrying while the database is unreachable. */
const UNAVAILABLE_RETRY_AFTER_S = 5;

export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  code: ProblemCode,
  detail: string,
  extensions: Record<string, unknown> = {},
  status: number = PROBLEMS[code].status,
) {
  request.problemCode = code;
  const render = request.routeOptions?.config?.renderProblem;
  if (render) return render(reply, { code, status, detail });
  return reply
    .status(status)
    .type('application/problem+json')
    .send({
      type: problemType(code),
      title: PROBLEMS[code].title,
      status,
      detail,
      code,
      request_id: request.id,
      ...extensions,
    });
}

/**
 * Fastify's `frameworkErrors`: requests its router refuses before any route or hook runs (a path
 * that is not valid percent-encoded UTF-8, a path parameter over maxParamLength).
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  // These replies bypass the app's onSend hooks: set what they would have.
  reply.header('x-request-id', request.id).header('cache-control', 'no-store');
  if (error.code === 'FST_ERR_BAD_URL') return sendProblem(request, reply, 'bad_request', 'The URL path is not valid percent-encoded UTF-8');
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') return sendProblem(request, reply, 'uri_too_long', 'A path segment is longer than allowed');
  request.log.error({ err: error }, 'unhandled framework error');
  return sendProblem(request, reply, 'internal_error', 'An unexpected error occurred', {}, 500);
}

const CLIENT_ERRORS: Record<string, ProblemCode> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'request_timeout',
  HPE_HEADER_OVERFLOW: 'headers_too_large',
};

/**
 * Node's `clientError`: the bytes on the connection are not an HTTP request we can parse (conflicting
 * Content-Length, bad chunking, oversized headers) or did not arrive in time. No request exists, so
 * the problem is written to the socket directly, without a request_id, and the connection closed.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket) {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code = CLIENT_ERRORS[error.code ?? ''] ?? 'bad_request';
  const { status, title } = PROBLEMS[code];
  const detail = code === 'bad_request' ? 'The request is not valid HTTP/1.1' : title;
  const body = JSON.stringify({ type: problemType(code), title, status, detail, code });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: { issue?: { path?: PropertyKey[] } } & Record<string, unknown>;
}

function validationErrors(error: FastifyError) {
  return (error.validation as ValidationIssue[]).map((issue) => {
    const path = issue.params?.issue?.path;
    const where = Array.isArray(path) && path.length > 0 ? `/${path.map(String).join('/')}` : issue.instancePath ?? '';
    return { location: error.validationContext ?? 'body', path: where, message: issue.message ?? 'is invalid' };
  });
}

/** Fastify's own request errors, mapped to our codes. */
/**
 * SQLSTATEs of a value the database refused as given: too long, out of range, not a date, not
 * representable. Other data exceptions (division by zero, a bad interval) come from SQL the server
 * built, and stay 500s.
 */
const VALUE_OUT_OF_RANGE = new Set(['22001', '22003', '22007', '22008', '22021', '22P02', '22P05']);

const FASTIFY_CODES: Record<string, ProblemCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
};

declare module 'fastify' {
  interface FastifyInstance {
    /** Every registered method and path (HEAD included), e.g. for route-coverage tests and docs. */
    knownRoutes: ReadonlyArray<{ method: string; url: string }>;
  }
  interface FastifyRequest {
    /** The `code` of the problem this request was answered with, once it was; for metrics. */
    problemCode: ProblemCode | null;
  }
  interface FastifyContextConfig {
    /**
     * How this route answers a problem instead of problem+json (a page a browser lands on): every
     * problem, the route's own, validation, an outage or the deadline, takes the same form.
     */
    renderProblem?: (reply: FastifyReply, problem: { code: ProblemCode; status: number; detail: string }) => FastifyReply;
  }
}

export default fp(
  async (app) => {
    // A second router with every registered path, so an unknown method on a known path is a 405.
    const known = FindMyWay();
    const list: { method: string; url: string }[] = [];
    app.decorate('knownRoutes', list);
    app.decorateRequest('problemCode', null);
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        if (known.hasRoute(method as 'GET', route.url)) continue;
        known.on(method as 'GET', route.url, () => {});
        list.push({ method, url: route.url });
      }
    });

    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0] ?? '/';
      // OPTIONS is CORS's catch-all (every path has it), not a method of the resource. A route of
      // this very method that sends here (a static file that is not there) is a 404, not a 405.
      const allowed = HTTP_METHODS.filter((method) => method !== 'OPTIONS' && known.find(method, path) !== null);
      if (allowed.length > 0 && !allowed.includes(request.method as (typeof HTTP_METHODS)[number])) {
        reply.header('allow', allowed.join(', '));
        return sendProblem(request, reply, 'method_not_allowed', `${request.method} is not allowed on ${path}`);
      }
      return sendProblem(request, reply, 'not_found', `No route for ${request.method} ${path}`);
    });

    app.setErrorHandler((error: FastifyError, request, reply) => {
      if (error instanceof AppError) {
        reply.headers(error.headers);
        if (error.status >= 500) request.log.error({ err: error.cause ?? error }, error.message);
        return sendProblem(request, reply, error.code, error.message, error.extensions);
      }
      if (error.validation) {
        return sendProblem(request, reply, 'validation_failed', 'The request is invalid; see errors', {
          errors: validationErrors(error),
        });
      }
      const mapped = error.code ? FASTIFY_CODES[error.code] : undefined;
      if (mapped) return sendProblem(request, reply, mapped, error.message);
      if (error instanceof KeyringError) {
        request.log.error({ err: error }, 'a stored secret cannot be decrypted: check TOKEN_ENCRYPTION_KEY and TOKEN_ENCRYPTION_OLD_KEYS');
        return sendProblem(request, reply, 'encryption_key_unavailable', 'A stored secret cannot be decrypted with the configured keys; operators: see the server log');
      }
      if (error.code === 'FST_ERR_HANDLER_TIMEOUT') {
        // plugins/deadline.ts: the handler is still waiting on the database or another dependency.
        request.log.error({ err: error }, 'no answer within the request deadline');
        reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_S));
        const answered = sendProblem(request, reply, 'unavailable', 'The request could not be completed in time (the database or another dependency did not answer); retry later');
        dropLateAnswers(reply);
        return answered;
      }
      if (isDatabaseUnavailable(error)) {
        request.log.error({ err: error }, 'database unavailable');
        reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_S));
        return sendProblem(request, reply, 'unavailable', 'The database is unavailable; retry later');
      }
      // Requests are validated before they reach the database; these are the race and the values
      // validation cannot see: a row referred to was deleted meanwhile, a value out of the
      // database's range (VALUE_OUT_OF_RANGE). The client's to retry or fix, not a server fault. (A unique violation
      // stays a 500: routes handle the duplicates they expect, and any other is a fault, such as
      // an audit chain whose head was deleted.)
      const state = sqlState(error);
      // Writes take their locks in one order (db/organizations.ts inOrganization); should two
      // transactions still deadlock or fail to serialize, the one Postgres cancelled is retried.
      if (state === DEADLOCK_DETECTED || state === SERIALIZATION_FAILURE) {
        request.log.warn({ err: error }, 'transaction cancelled by a concurrent one');
        reply.header('retry-after', '1');
        return sendProblem(request, reply, 'conflict', 'A concurrent change to the same resources cancelled this request; retry it');
      }
      if (state === FOREIGN_KEY_VIOLATION) {
        request.log.warn({ err: error }, 'constraint violated by a concurrent change');
        return sendProblem(request, reply, 'conflict', 'A resource this request refers to was changed or deleted meanwhile; read it again and retry');
      }
      if (state !== null && VALUE_OUT_OF_RANGE.has(state)) {
        request.log.warn({ err: error }, 'value refused by the database');
        return sendProblem(request, reply, 'bad_request', 'A value in the request is out of the range the database can store');
      }
      const status = error.statusCode ?? 500;
      if ((status >= 400 && status < 500) || status === 503) {
        return sendProblem(request, reply, codeForStatus(status), error.message, {}, status);
      }
      request.log.error({ err: error }, 'unhandled error');
      return sendProblem(request, reply, 'internal_error', 'An unexpected error occurred', {}, 500);
    });
  },
  { name: 'errors' },
);
