// The app's registered routes as the fuzzer sees them: what kind of credential each takes, its path
// parameters, whether it has a body, and the seed each of its runs draws from.
import { SEED } from './settings.js';

/** Files @fastify/swagger-ui serves under /docs/static/*. */
export const ASSETS = ['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'index.css', 'favicon-32x32.png', 'logo.svg'];
/** Routes whose success is a redirect (3xx): the reason. */
export const REDIRECTS: Record<string, string> = {
  '/docs/static/index.html': 'swagger-ui sends the bare index page to /docs/',
  '/api/v1/oauth/google/start': 'answers 302 to Google\'s consent page unless ?redirect=false',
};

export type Kind = 'public' | 'metrics' | 'platform' | 'org' | 'agent' | 'webhook';
export type Mode = 'valid-ish' | 'bad';

export interface Route {
  method: string;
  /** As registered, e.g. /api/v1/agents/:id. */
  url: string;
  /** "METHOD url". */
  key: string;
  /** The key its valid input is looked up by: HEAD shares GET's, a trailing slash is dropped. */
  spec: string;
  kind: Kind;
  /** Path parameter names in order; '*' for a wildcard. */
  params: string[];
  hasBody: boolean;
}

function kindOf(url: string): Kind {
  if (url === '/metrics') return 'metrics';
  if (url.startsWith('/docs') || ['/openapi.json', '/healthz', '/readyz', '/api/v1/oauth/google/callback'].includes(url)) return 'public';
  if (url.startsWith('/api/v1/organizations') || url === '/api/v1/status' || url === '/api/v1/status/') return 'platform';
  if (url.startsWith('/api/v1/hooks/')) return 'webhook';
  if (url === '/api/v1/agent' || url.startsWith('/api/v1/agent/')) return 'agent';
  if (url.startsWith('/api/v1/')) return 'org';
  throw new Error(`${url}: a route of no known kind; place it in kindOf()`);
}

export function routeOf(method: string, url: string): Route {
  const path = url.length > 1 ? url.replace(/\/$/, '') : url;
  return {
    method,
    url,
    key: `${method} ${url}`,
    spec: `${method === 'HEAD' ? 'GET' : method} ${path}`,
    kind: kindOf(url),
    params: [...url.matchAll(/:(\w+)|\*/g)].map((match) => match[1] ?? '*'),
    hasBody: method !== 'GET' && method !== 'HEAD',
  };
}

/** FNV-1a: a stable 32-bit hash of a string. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Each route and kind of run draws from a seed of its own, reproducible from FUZZ_SEED. */
export const seedFor = (route: Route, mode: Mode) => (SEED ^ hash(`${mode} ${route.key}`)) | 0;
