// A real server (dist/server.js) on a database of its own, set up the way the docs assume a
// deployment is: ADMIN_TOKEN_FILE, a fixed TOKEN_ENCRYPTION_KEY, Google OAuth configured. Doc
// snippets run against it with the same environment an operator's shell would have.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import type { Test } from 'tap';
import { isolatedDatabaseEnv } from '../helper.js';
import { startServer, type ServerProcess } from './process.js';

export interface DocServer {
  url: string;
  /** The deployment's environment: what the server runs with and what CLI commands need. */
  env: Record<string, string>;
  adminTokenFile: string;
  adminToken(): string;
  /** The test helpers' `app` for this server: inject() over real HTTP. */
  client: FastifyInstance;
  /** Restarts the server with `changes` applied to its environment (as an operator redeploys); resolves once `probe` answers 200. */
  restart(changes?: Record<string, string>, probe?: string): Promise<void>;
  process(): ServerProcess;
}

export async function startDocServer(t: Test, extraEnv: Record<string, string> = {}): Promise<DocServer> {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-docs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const adminTokenFile = join(dir, 'admin-token');
  writeFileSync(adminTokenFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const env: Record<string, string> = {
    ...((await isolatedDatabaseEnv(t)) as Record<string, string>),
    DATA_DIR: dir,
    ADMIN_TOKEN_FILE: adminTokenFile,
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    GOOGLE_OAUTH_CLIENT_ID: 'docs-client.apps.googleusercontent.com',
    GOOGLE_OAUTH_CLIENT_SECRET: 'docs-client-secret',
    GOOGLE_OAUTH_REDIRECT_URI: 'http://127.0.0.1:8080/api/v1/oauth/google/callback',
    METRICS_TOKEN: randomBytes(32).toString('base64url'),
    LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  let server = await startServer(env);
  t.teardown(() => server.stop('SIGKILL'));

  const client = {
    async inject(options: InjectOptions) {
      const headers: Record<string, string> = { ...(options.headers as Record<string, string>) };
      let body: string | undefined;
      if (options.payload !== undefined) {
        body = typeof options.payload === 'string' ? options.payload : JSON.stringify(options.payload);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetch(`${server.url}${options.url}`, { method: options.method, headers, body });
      const text = await response.text();
      return { statusCode: response.status, body: text, headers: Object.fromEntries(response.headers), json: () => JSON.parse(text) };
    },
  } as unknown as FastifyInstance;

  return {
    get url() {
      return server.url;
    },
    env,
    adminTokenFile,
    adminToken: () => readFileSync(adminTokenFile, 'utf8').trim(),
    client,
    async restart(changes = {}, probe = '/readyz') {
      await server.stop('SIGTERM');
      Object.assign(env, changes);
      for (const [name, value] of Object.entries(env)) if (value === '') delete env[name];
      server = await startServer(env, 30_000, probe);
    },
    process: () => server,
  };
}
