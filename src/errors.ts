// Every application error: a stable machine-readable code, its HTTP status and title.
// The codes are API contract; the OpenAPI document and docs/reference/api.md (§ Errors) list them.

export const PROBLEMS = {
  validation_failed: { status: 400, title: 'Request validation failed' },
  invalid_agent: { status: 400, title: 'Unknown agent' },
  invalid_state: { status: 400, title: 'Unknown, expired or used OAuth state' },
  access_denied: { status: 400, title: 'Consent was declined' },
  no_refresh_token: { status: 400, title: 'Google returned no refresh token' },
  invalid_json: { status: 400, title: 'Malformed JSON body' },
  bad_request: { status: 400, title: 'Bad request' },
  unauthorized: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Forbidden' },
  agent_disabled: { status: 403, title: 'Agent disabled' },
  metrics_loopback_only: { status: 403, title: 'Metrics are served only to this host unless METRICS_TOKEN is set' },
  signature_missing: { status: 403, title: 'Webhook signature missing' },
  signature_invalid: { status: 403, title: 'Webhook signature invalid' },
  timestamp_out_of_tolerance: { status: 403, title: 'Webhook timestamp outside the tolerance window' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  request_timeout: { status: 408, title: 'Request not received in time' },
  conflict: { status: 409, title: 'Conflict' },
  lease_not_held: { status: 409, title: 'Delivery lease not held' },
  oauth_not_connected: { status: 409, title: 'No Google account connected' },
  reconnect_required: { status: 409, title: 'The Google connection must be reconnected' },
  webhook_disabled: { status: 410, title: 'Webhook disabled' },
  slug_taken: { status: 409, title: 'Slug already in use' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  uri_too_long: { status: 414, title: 'URI too long' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  rate_limited: { status: 429, title: 'Too many requests' },
  headers_too_large: { status: 431, title: 'Request headers too large' },
  internal_error: { status: 500, title: 'Internal server error' },
  token_exchange_failed: { status: 502, title: 'Google refused the authorization code' },
  token_refresh_failed: { status: 502, title: 'Google did not issue an access token' },
  unavailable: { status: 503, title: 'Service unavailable' },
  admin_not_configured: { status: 503, title: 'Platform admin API not configured' },
  oauth_not_configured: { status: 503, title: 'Google OAuth is not configured' },
  encryption_key_unavailable: { status: 503, title: 'Stored secret cannot be decrypted' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

export interface ProblemOptions {
  detail?: string;
  /** Extra members of the problem document (RFC 9457 extensions), snake_case. */
  extensions?: Record<string, unknown>;
  headers?: Record<string, string>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly status: number;
  readonly title: string;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ProblemCode,
    options: ProblemOptions = {},
  ) {
    const problem = PROBLEMS[code];
    super(options.detail ?? problem.title, { cause: options.cause });
    this.name = 'AppError';
    this.status = problem.status;
    this.title = problem.title;
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }
}

export const problemType = (code: string): string => `urn:switchboard:problem:${code}`;

/** The code a generic HTTP status gets when no more specific code applies. */
const GENERIC: Record<number, ProblemCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  409: 'conflict',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  431: 'headers_too_large',
  503: 'unavailable',
};

export function codeForStatus(status: number): ProblemCode {
  return GENERIC[status] ?? (status >= 500 ? 'internal_error' : 'bad_request');
}
