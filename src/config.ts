// The one schema over the environment. loadConfig() is pure: it reads the object it is given,
// never process.env directly, and reports every bad variable at once.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseKey } from './crypto/keyring.js';

const bool = (fallback: boolean) =>
  z
    .stringbool({ error: 'must be true or false' })
    .default(fallback);

const int = (fallback: number, min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a whole number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` })
    .default(fallback);

const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isIpOrCidr(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  if (rest.length > 0 || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  // A /0 range trusts every address: the same as `true`, so refused like it.
  return /^\d{1,3}$/.test(prefix) && bits >= 1 && bits <= (family === 4 ? 32 : 128);
}

const trustProxy = z
  .string()
  .optional()
  .transform(list)
  .superRefine((entries, ctx) => {
    for (const entry of entries) {
      if (!isIpOrCidr(entry)) {
        ctx.addIssue({
          code: 'custom',
          message: `"${entry}" is not an IP address or CIDR range (true, * and /0 ranges are refused so client IPs cannot be forged)`,
        });
      }
    }
  });

const corsOrigins = z
  .string()
  .optional()
  .transform(list)
  .superRefine((entries, ctx) => {
    for (const entry of entries) {
      let ok = false;
      try {
        const url = new URL(entry);
        ok = !entry.includes('*') && (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === entry;
      } catch {
        ok = false;
      }
      if (!ok) {
        ctx.addIssue({
          code: 'custom',
          message: `"${entry}" is not an origin like https://app.example.com (wildcards are refused)`,
        });
      }
    }
  });

function isKey(value: string): boolean {
  try {
    parseKey(value);
    return true;
  } catch {
    return false;
  }
}

const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const databaseUrl = optionalString.refine(
  (value) => value === undefined || /^postgres(ql)?:\/\//.test(value),
  { error: 'must be a postgres:// or postgresql:// URL' },
);

const baseUrl = optionalString.refine(
  (value) => {
    if (value === undefined) return true;
    try {
      const url = new URL(value);
      return url.protocol === 'http:' || url.protocol === 'https:';
    } catch {
      return false;
    }
  },
  { error: 'must be an absolute http(s) URL' },
);

export const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  PORT: int(8080, 0, 65535),
  BASE_URL: baseUrl,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
  REQUEST_LOG_INCLUDE_HEALTH: bool(false),
  REQUEST_LOG_SLOW_MS: int(1000, 0, 3_600_000),
  DATABASE_URL: databaseUrl,
  DATABASE_POOL_MAX: int(10, 1, 1000),
  DATABASE_CONNECT_TIMEOUT_MS: int(5000, 100, 600_000),
  DATA_DIR: z.string().trim().min(1).default('./.data'),
  MIGRATE_ON_START: bool(true),
  READINESS_TIMEOUT_MS: int(2000, 50, 60_000),
  SHUTDOWN_TIMEOUT_MS: int(10_000, 100, 600_000),
  REQUEST_TIMEOUT_MS: int(30_000, 1000, 600_000),
  KEEP_ALIVE_TIMEOUT_MS: int(72_000, 1000, 600_000),
  BODY_LIMIT_BYTES: int(1_048_576, 1024, 100 * 1_048_576),
  TRUST_PROXY: trustProxy,
  ADMIN_TOKEN: optionalString.refine((value) => value === undefined || value.length >= 32, {
    error: 'must be at least 32 characters (generate one with: openssl rand -base64 32)',
  }),
  ADMIN_TOKEN_FILE: optionalString,
  AUDIT_FAILURE_FLUSH_S: int(60, 1, 3600),
  REDIS_URL: optionalString.refine((value) => value === undefined || /^rediss?:\/\//.test(value), {
    error: 'must be a redis:// or rediss:// URL',
  }),
  RATE_LIMIT_AGENT_AUTH_MAX: int(20, 1, 1_000_000),
  RATE_LIMIT_AGENT_AUTH_WINDOW_S: int(60, 1, 86_400),
  RATE_LIMIT_AGENT_MAX: int(600, 1, 10_000_000),
  RATE_LIMIT_AGENT_WINDOW_S: int(60, 1, 86_400),
  AGENT_OFFLINE_AFTER_S: int(120, 5, 86_400),
  TOKEN_ENCRYPTION_KEY: optionalString.refine((value) => value === undefined || isKey(value), {
    error: 'must be 32 random bytes, base64 encoded (generate with: openssl rand -base64 32)',
  }),
  TOKEN_ENCRYPTION_OLD_KEYS: z
    .string()
    .optional()
    .transform(list)
    .refine((keys) => keys.every(isKey), { error: 'must be a comma-separated list of 32-byte base64 keys' }),
  GOOGLE_OAUTH_CLIENT_ID: optionalString,
  GOOGLE_OAUTH_CLIENT_SECRET: optionalString,
  GOOGLE_OAUTH_REDIRECT_URI: baseUrl,
  GOOGLE_OAUTH_SCOPES: z.string().trim().min(1).default('openid email https://www.googleapis.com/auth/gmail.modify https://www.googleapis.com/auth/calendar'),
  OAUTH_SUCCESS_REDIRECT_URL: baseUrl,
  GOOGLE_OAUTH_AUTH_URL: baseUrl,
  GOOGLE_OAUTH_TOKEN_URL: baseUrl,
  GOOGLE_OAUTH_REVOKE_URL: baseUrl,
  GOOGLE_OAUTH_USERINFO_URL: baseUrl,
  GOOGLE_OAUTH_TIMEOUT_MS: int(10_000, 500, 120_000),
  WEBHOOK_MAX_PAYLOAD_BYTES: int(1_048_576, 1024, 25 * 1_048_576),
  WEBHOOK_TOLERANCE_S: int(300, 10, 3600),
  WEBHOOK_MAX_ATTEMPTS: int(10, 1, 1000),
  WEBHOOK_RETENTION_DAYS: int(30, 1, 3650),
  MAINTENANCE_INTERVAL_S: int(60, 1, 3600),
  RATE_LIMIT_WEBHOOK_MAX: int(60, 1, 10_000_000),
  RATE_LIMIT_WEBHOOK_WINDOW_S: int(60, 1, 86_400),
  CORS_ORIGINS: corsOrigins,
  METRICS_TOKEN: optionalString.refine((value) => value === undefined || value.length >= 32, {
    error: 'must be at least 32 characters (generate one with: openssl rand -base64 32)',
  }),
});

export type Env = z.input<typeof EnvSchema>;

export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  host: string;
  port: number;
  baseUrl: string;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  requestLogIncludeHealth: boolean;
  requestLogSlowMs: number;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  databaseConnectTimeoutMs: number;
  dataDir: string;
  migrateOnStart: boolean;
  readinessTimeoutMs: number;
  shutdownTimeoutMs: number;
  requestTimeoutMs: number;
  /**
   * How long a request waits for the database (or Google) before it is answered 503: on the hot
   * paths (ingest, agent auth, acks) per batched query, elsewhere for the whole request
   * (plugins/deadline.ts). REQUEST_TIMEOUT_MS less half a second to send that answer, since the
   * connection is closed once it has been idle for REQUEST_TIMEOUT_MS.
   */
  databaseWaitTimeoutMs: number;
  keepAliveTimeoutMs: number;
  bodyLimitBytes: number;
  trustProxy: string[];
  corsOrigins: string[];
  adminToken: string | undefined;
  adminTokenFile: string | undefined;
  auditFailureFlushMs: number;
  redisUrl: string | undefined;
  rateLimitAgentAuthMax: number;
  rateLimitAgentAuthWindowS: number;
  rateLimitAgentMax: number;
  rateLimitAgentWindowS: number;
  agentOfflineAfterS: number;
  tokenEncryptionKey: string | undefined;
  tokenEncryptionOldKeys: string[];
  webhookMaxPayloadBytes: number;
  webhookToleranceS: number;
  webhookMaxAttempts: number;
  webhookRetentionDays: number;
  /** How often each instance runs maintenance: lease expiry, retention, expired OAuth states. */
  maintenanceIntervalMs: number;
  rateLimitWebhookMax: number;
  rateLimitWebhookWindowS: number;
  google: GoogleOAuthConfig | null;
  googleScopes: string[];
  oauthSuccessRedirectUrl: string | undefined;
  /** Bearer token for GET /metrics; unset: /metrics answers loopback clients only. */
  metricsToken: string | undefined;
}

export interface GoogleOAuthConfig {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  authUrl: string;
  tokenUrl: string;
  revokeUrl: string;
  userinfoUrl: string;
  /** The longest one call to Google may take, retries included. */
  timeoutMs: number;
}

/** Thrown when the environment is invalid; its message names every offending variable. */
export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(
      'Invalid configuration:\n' +
        problems.map((problem) => `  - ${problem.variable}: ${problem.message}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "not set", as in a copied .env.example with blanks.
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? '(environment)'),
      message: issue.message,
    }));
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const rules: { variable: string; message: string }[] = [];
  if (e.ADMIN_TOKEN !== undefined && e.ADMIN_TOKEN_FILE !== undefined) {
    rules.push({ variable: 'ADMIN_TOKEN_FILE', message: 'set either ADMIN_TOKEN or ADMIN_TOKEN_FILE, not both' });
  }
  if (e.TOKEN_ENCRYPTION_KEY === undefined && e.NODE_ENV === 'production') {
    rules.push({
      variable: 'TOKEN_ENCRYPTION_KEY',
      message: 'is required with NODE_ENV=production (generate with: openssl rand -base64 32); only development generates one into DATA_DIR',
    });
  }
  const googleParts = [e.GOOGLE_OAUTH_CLIENT_ID, e.GOOGLE_OAUTH_CLIENT_SECRET, e.GOOGLE_OAUTH_REDIRECT_URI];
  if (googleParts.some((part) => part !== undefined) && googleParts.some((part) => part === undefined)) {
    rules.push({
      variable: 'GOOGLE_OAUTH_CLIENT_ID',
      message: 'GOOGLE_OAUTH_CLIENT_ID, GOOGLE_OAUTH_CLIENT_SECRET and GOOGLE_OAUTH_REDIRECT_URI must be set together',
    });
  }
  if (rules.length > 0) throw new ConfigError(rules);
  const publicHost = e.HOST === '0.0.0.0' || e.HOST === '::' ? 'localhost' : e.HOST;
  return {
    nodeEnv: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    baseUrl: (e.BASE_URL ?? `http://${publicHost}:${e.PORT}`).replace(/\/+$/, ''),
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    requestLogIncludeHealth: e.REQUEST_LOG_INCLUDE_HEALTH,
    requestLogSlowMs: e.REQUEST_LOG_SLOW_MS,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseConnectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    dataDir: e.DATA_DIR,
    migrateOnStart: e.MIGRATE_ON_START,
    readinessTimeoutMs: e.READINESS_TIMEOUT_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    databaseWaitTimeoutMs: Math.max(500, e.REQUEST_TIMEOUT_MS - 500),
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    trustProxy: e.TRUST_PROXY,
    corsOrigins: e.CORS_ORIGINS,
    adminToken: e.ADMIN_TOKEN,
    adminTokenFile: e.ADMIN_TOKEN_FILE,
    auditFailureFlushMs: e.AUDIT_FAILURE_FLUSH_S * 1000,
    redisUrl: e.REDIS_URL,
    rateLimitAgentAuthMax: e.RATE_LIMIT_AGENT_AUTH_MAX,
    rateLimitAgentAuthWindowS: e.RATE_LIMIT_AGENT_AUTH_WINDOW_S,
    rateLimitAgentMax: e.RATE_LIMIT_AGENT_MAX,
    rateLimitAgentWindowS: e.RATE_LIMIT_AGENT_WINDOW_S,
    agentOfflineAfterS: e.AGENT_OFFLINE_AFTER_S,
    tokenEncryptionKey: e.TOKEN_ENCRYPTION_KEY,
    tokenEncryptionOldKeys: e.TOKEN_ENCRYPTION_OLD_KEYS,
    webhookMaxPayloadBytes: e.WEBHOOK_MAX_PAYLOAD_BYTES,
    webhookToleranceS: e.WEBHOOK_TOLERANCE_S,
    webhookMaxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
    webhookRetentionDays: e.WEBHOOK_RETENTION_DAYS,
    maintenanceIntervalMs: e.MAINTENANCE_INTERVAL_S * 1000,
    rateLimitWebhookMax: e.RATE_LIMIT_WEBHOOK_MAX,
    rateLimitWebhookWindowS: e.RATE_LIMIT_WEBHOOK_WINDOW_S,
    google:
      e.GOOGLE_OAUTH_CLIENT_ID && e.GOOGLE_OAUTH_CLIENT_SECRET && e.GOOGLE_OAUTH_REDIRECT_URI
        ? {
            clientId: e.GOOGLE_OAUTH_CLIENT_ID,
            clientSecret: e.GOOGLE_OAUTH_CLIENT_SECRET,
            redirectUri: e.GOOGLE_OAUTH_REDIRECT_URI,
            authUrl: e.GOOGLE_OAUTH_AUTH_URL ?? 'https://accounts.google.com/o/oauth2/v2/auth',
            tokenUrl: e.GOOGLE_OAUTH_TOKEN_URL ?? 'https://oauth2.googleapis.com/token',
            revokeUrl: e.GOOGLE_OAUTH_REVOKE_URL ?? 'https://oauth2.googleapis.com/revoke',
            userinfoUrl: e.GOOGLE_OAUTH_USERINFO_URL ?? 'https://openidconnect.googleapis.com/v1/userinfo',
            timeoutMs: e.GOOGLE_OAUTH_TIMEOUT_MS,
          }
        : null,
    googleScopes: e.GOOGLE_OAUTH_SCOPES.split(/\s+/).filter(Boolean),
    oauthSuccessRedirectUrl: e.OAUTH_SUCCESS_REDIRECT_URL,
    metricsToken: e.METRICS_TOKEN,
  };
}
