// pino set up so that secrets cannot reach a log line: known header paths are redacted, any
// key that looks like a secret is scrubbed at every depth, and URLs lose secret query values.
import { pino, type DestinationStream, type Logger } from 'pino';

const REDACTED = '[redacted]';

/** Keys whose values are never logged, wherever they appear. */
const SECRET_KEY = /token|secret|password|passwd|authorization|cookie|signature|api[-_]?key|credential|^code$|^state$/i;

/** Query parameters whose values are stripped from logged URLs (OAuth codes, states, tokens). */
const SECRET_QUERY = /token|secret|passw|signature|key|auth|bearer|session|credential|^code$|^state$/i;

/**
 * Switchboard's own secrets, recognised by their shape wherever they are put in a URL (a path, a
 * parameter of any name, percent-encoded or not): API keys, agent tokens, webhook secrets.
 */
// No word boundary before them: in a percent-encoded URL the character before is often the last
// digit of an escape (`Bearer%20sbk_…`). A truncated secret is still most of one: 20 characters do.
const SECRET_VALUE = /(sb[ka])_[0-9a-f]{16}_[A-Za-z0-9_-]{20,}|whsec_[A-Za-z0-9+/=%]{16,}/g;

export function redactUrl(url: string): string {
  const scrubbed = url.replace(SECRET_VALUE, (_match, prefix: string | undefined) => (prefix ? `${prefix}_${REDACTED}` : `whsec_${REDACTED}`));
  const q = scrubbed.indexOf('?');
  if (q === -1) return scrubbed;
  const params = new URLSearchParams(scrubbed.slice(q + 1));
  let changed = false;
  for (const name of new Set(params.keys())) {
    if (SECRET_QUERY.test(name)) {
      params.set(name, REDACTED);
      changed = true;
    }
  }
  return changed ? `${scrubbed.slice(0, q)}?${params.toString()}` : scrubbed;
}

export function scrub(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) && inner !== undefined && inner !== null ? REDACTED : scrub(inner, depth + 1);
  }
  return out;
}

interface LoggedError {
  type: string;
  message: string;
  code?: string;
  stack?: string;
}

/** Errors from the data layer carry SQL and parameters; only the cause's code and message are logged. */
export function serializeError(err: unknown): LoggedError {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const isQueryError = err.name === 'DrizzleQueryError';
  const source = isQueryError && err.cause instanceof Error ? err.cause : err;
  const code = (source as { code?: unknown }).code;
  return {
    type: source.name,
    message: source.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(isQueryError ? {} : { stack: err.stack }),
  };
}

export interface LoggerOptions {
  level: string;
  format: 'json' | 'pretty';
  /** Where log lines go; tests pass a capturing stream. Defaults to stdout. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    base: { service: 'switchboard' },
    timestamp: pino.stdTimeFunctions.isoTime,
    messageKey: 'msg',
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-agent-token"]',
        'req.headers["x-hub-signature-256"]',
        'req.headers["x-webhook-signature"]',
        'req.headers["webhook-signature"]',
        'res.headers["set-cookie"]',
        'headers.authorization',
        'headers.cookie',
      ],
      censor: REDACTED,
    },
    serializers: { err: serializeError, error: serializeError },
    formatters: {
      level: (label: string) => ({ level: label }),
      log: (object: Record<string, unknown>) => scrub(object) as Record<string, unknown>,
    },
  };
  if (options.destination) return pino(base, options.destination);
  if (options.format === 'pretty') {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino(base);
}
