// Security headers for the JSON API. They are the same on every response, so helmet computes
// them once at start-up and one synchronous hook copies them onto each reply: @fastify/helmet
// runs helmet's middleware per request, re-reading all its options each time (a fifth of a
// probe's CPU). Browser pages (/docs) register @fastify/helmet with a policy of their own.
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

/** What API answers and the /docs pages have in common; /docs adds the headers helmet sets for pages. */
export const SHARED_HELMET_OPTIONS = {
  crossOriginResourcePolicy: { policy: 'same-origin' },
  referrerPolicy: { policy: 'no-referrer' },
  hsts: { maxAge: 31_536_000, includeSubDomains: true },
  xFrameOptions: { action: 'deny' },
} satisfies HelmetOptions;

/**
 * Responses are JSON, never documents: forbid everything a browser could load or frame. The set
 * is OWASP's for REST APIs (CSP, HSTS, nosniff, frame denial, plus referrer and resource policy);
 * helmet's headers that only mean something for HTML pages or retired browsers (COOP,
 * Origin-Agent-Cluster, X-DNS-Prefetch-Control, X-Download-Options,
 * X-Permitted-Cross-Domain-Policies, X-XSS-Protection) are left out: they are written on every
 * answer, and on a bare Node server helmet's 12 headers cost 35–85 % more CPU per answer than
 * none, the 6 kept 25–40 % (two runs each).
 */
const API_HELMET_OPTIONS = {
  ...SHARED_HELMET_OPTIONS,
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
  },
  crossOriginOpenerPolicy: false,
  originAgentCluster: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
} satisfies HelmetOptions;

/** The headers helmet's middleware sets for `options` (none of ours depends on the request). */
function helmetHeaders(options: HelmetOptions): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
  });
  return Object.freeze(headers);
}

/** What every API response carries. */
export const API_SECURITY_HEADERS = helmetHeaders(API_HELMET_OPTIONS);
