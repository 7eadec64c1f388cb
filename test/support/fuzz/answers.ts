// What an answer must be: never a 5xx, every error problem+json with a known code, and valid-ish
// input a success that gives back the names, descriptions and slugs sent.
import type { LightMyRequestResponse } from 'fastify';
import { PROBLEMS } from '../../../src/errors.js';
import type { Draft } from './requests.js';
import { REDIRECTS, type Route } from './routes.js';

/** What is wrong with any answer (valid or bad input), or null. */
export function problemWith(route: Route, res: { statusCode: number; headers: Record<string, unknown>; body: string }): string | null {
  if (res.statusCode >= 500) return `answered ${res.statusCode}: ${res.body.slice(0, 300)}`;
  if (res.statusCode < 400 || route.method === 'HEAD') return null;
  const type = String(res.headers['content-type'] ?? '');
  if (route.url === '/api/v1/oauth/google/callback' && type.startsWith('text/html')) {
    return String(res.headers['x-error-code'] ?? '') in PROBLEMS ? null : `HTML error page without a known x-error-code`;
  }
  if (!type.startsWith('application/problem+json')) return `${res.statusCode} with content-type ${type}: ${res.body.slice(0, 200)}`;
  let json: { code?: string; status?: number };
  try {
    json = JSON.parse(res.body);
  } catch {
    return `${res.statusCode} problem+json that does not parse`;
  }
  if (!json.code || !(json.code in PROBLEMS)) return `${res.statusCode} with unknown code ${json.code}`;
  if (json.status !== res.statusCode) return `status ${json.status} in the body, ${res.statusCode} on the wire`;
  return null;
}

const succeeded = (route: Route, status: number) => (status >= 200 && status < 300) || (route.url in REDIRECTS && status >= 300 && status < 400);

/** Whether `value` holds the string `text` anywhere. */
function holds(value: unknown, text: string): boolean {
  const stack = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item === text) return true;
    if (item !== null && typeof item === 'object') stack.push(...Object.values(item));
  }
  return false;
}

/** What is wrong with the answer to valid-ish input, or null: it must succeed and give back what was stored. */
export function validAnswerProblem(route: Route, res: LightMyRequestResponse, draft: Draft): string | null {
  if (!succeeded(route, res.statusCode)) return `valid-ish input answered ${res.statusCode}: ${res.body.slice(0, 400)}`;
  if (draft.echoes.length === 0) return null;
  let json: unknown;
  try {
    json = JSON.parse(res.body);
  } catch {
    return `${res.statusCode} answer that does not parse as JSON`;
  }
  const lost = draft.echoes.find((text) => !holds(json, text));
  return lost === undefined ? null : `${JSON.stringify(lost)} was sent, ${JSON.stringify(res.body.slice(0, 400))} came back`;
}
