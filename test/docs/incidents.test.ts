// The incident runbook (docs/operations/README.md), run exactly as written against a real server:
// each procedure's commands must contain the leak the way the runbook says they do.
import { randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { asAgent, bearer, createAgent, createKey, createWebhook, TEST_DATABASE_URL } from '../helper.js';
import { startDocServer, type DocServer } from '../support/doc-server.js';
import { printedJson, runnableSnippets, runSnippet } from '../support/doc-snippets.js';
import { startFakeGoogle } from '../support/fake-google.js';
import { githubHeaders } from '../support/signing.js';

const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';

const snippets = runnableSnippets();
const incident = (name: string) => {
  const snippet = snippets.get(name);
  if (!snippet) throw new Error(`the runbook has no runnable block ${name}`);
  return snippet;
};

async function organization(server: DocServer) {
  const res = await server.client.inject({
    method: 'POST',
    url: '/api/v1/organizations',
    headers: bearer(server.adminToken()),
    payload: { name: `incident-${randomUUID().slice(0, 8)}` },
  });
  return { key: res.json().api_key.key as string };
}

async function runIncident(t: Test, server: DocServer, names: string | string[], vars: Record<string, string>) {
  const run = await runSnippet([names].flat().map(incident), { ...server.env, SWITCHBOARD_URL: server.url, ...vars });
  t.equal(run.code, 0, `the runbook's commands exit 0\n${run.stderr}`);
  return Object.assign(printedJson(run.stdout), { stdout: run.stdout });
}

async function ingest(server: DocServer, webhookId: string, secret: string) {
  const body = JSON.stringify({ incident: randomUUID() });
  const headers = await githubHeaders(secret, body);
  return (await server.client.inject({ method: 'POST', url: `/api/v1/hooks/${webhookId}`, headers, payload: body })).statusCode;
}

t.test('every incident the runbook covers has a runnable block', async (t) => {
  const names = [...snippets.keys()].filter((name) => name.startsWith('incident-'));
  t.same(names.sort(), [
    'incident-encryption-key-generate',
    'incident-encryption-key-revoke',
    'incident-encryption-key-rotate',
    'incident-exfiltration-agent-tokens',
    'incident-exfiltration-api-keys',
    'incident-leaked-admin-token',
    'incident-leaked-agent-token',
    'incident-leaked-api-key',
    'incident-leaked-webhook-secret',
  ]);
});

if (!TEST_DATABASE_URL) {
  t.comment('skipped: running the incident runbook needs TEST_DATABASE_URL (CLI commands and the server share a Postgres database)');
} else {
  t.test('the incident runbook contains each leak', async (t) => {
    const google = await startFakeGoogle(CALLBACK);
    t.teardown(() => google.close());
    const server = await startDocServer(t, google.env);
    const connectGoogle = async (key: string, authorizationUrl?: string) => {
      const url = authorizationUrl ?? (await server.client.inject({ method: 'GET', url: '/api/v1/oauth/google/start?redirect=false', headers: bearer(key) })).json().authorization_url;
      const res = await server.client.inject({ method: 'GET', url: google.consent(url).replace('http://127.0.0.1:8080', '') });
      t.equal(res.statusCode, 200, 'Google connected');
    };
    const broker = (token: string) => server.client.inject({ method: 'POST', url: '/api/v1/agent/credentials/google/token', headers: asAgent(token) });

    await t.test('leaked API key: revoked at once, and the audit log lists what it did', async (t) => {
      const org = await organization(server);
      const leaked = await createKey(server.client, org.key, 'admin');
      const agent = await createAgent(server.client, leaked.key);
      const [audit] = await runIncident(t, server, 'incident-leaked-api-key', { SWITCHBOARD_ADMIN_KEY: org.key, LEAKED_KEY_ID: leaked.id });
      const refused = await server.client.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(leaked.key) });
      t.equal(refused.statusCode, 401, 'the leaked key is refused');
      t.ok(audit.data.length >= 1, 'it prints the key’s audited actions');
      t.ok(
        audit.data.every((event: { actor_id: string }) => event.actor_id === leaked.id),
        'only that key’s actions',
      );
      t.ok(
        audit.data.some((event: { action: string; target_id: string }) => event.action === 'agent.created' && event.target_id === agent.id),
        'including the agent it created',
      );
    });

    await t.test('leaked agent token: the old token stops at once, the printed one works', async (t) => {
      const org = await organization(server);
      const agent = await createAgent(server.client, org.key);
      const [rotated] = await runIncident(t, server, 'incident-leaked-agent-token', { SWITCHBOARD_ADMIN_KEY: org.key, AGENT_ID: agent.id });
      const heartbeat = (token: string) =>
        server.client.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(token), payload: {} });
      t.equal((await heartbeat(agent.token)).statusCode, 401, 'the leaked token is refused');
      t.equal((await heartbeat(rotated.token)).statusCode, 200, 'the new token works');
    });

    await t.test('leaked webhook secret: the old secret stops verifying at once, the printed one verifies', async (t) => {
      const org = await organization(server);
      const webhook = await createWebhook(server.client, org.key);
      t.equal(await ingest(server, webhook.id, webhook.secret), 202, 'the secret works before');
      const [rotated] = await runIncident(t, server, 'incident-leaked-webhook-secret', { SWITCHBOARD_ADMIN_KEY: org.key, WEBHOOK_ID: webhook.id });
      t.equal(await ingest(server, webhook.id, webhook.secret), 403, 'the leaked secret is refused');
      t.equal(await ingest(server, webhook.id, rotated.secret), 202, 'the new secret verifies');
    });

    await t.test('leaked admin token: the file is replaced, the old token is refused without a restart', async (t) => {
      const leaked = server.adminToken();
      const list = (token: string) => server.client.inject({ method: 'GET', url: '/api/v1/organizations', headers: bearer(token) });
      t.equal((await list(leaked)).statusCode, 200);
      await runIncident(t, server, 'incident-leaked-admin-token', {});
      const replaced = server.adminToken();
      t.not(replaced, leaked, 'a new token is in the file');
      t.ok(replaced.length >= 32, 'strong enough for the server');
      t.equal((await list(leaked)).statusCode, 401, 'the leaked token is refused');
      t.equal((await list(replaced)).statusCode, 200, 'the new one works');
      t.equal(server.process().child.exitCode, null, 'no restart');
    });

    await t.test('leaked encryption key: re-encrypted under a new key, Google grant revoked and renewed, webhook secrets replaced', async (t) => {
      const org = await organization(server);
      const agent = await createAgent(server.client, org.key);
      const hooks = [await createWebhook(server.client, org.key), await createWebhook(server.client, org.key)];
      await connectGoogle(org.key);
      const leakedKey = server.env.TOKEN_ENCRYPTION_KEY!;

      const generated = await runIncident(t, server, 'incident-encryption-key-generate', {});
      const newKey = generated.stdout.trim();
      t.equal(Buffer.from(newKey, 'base64').length, 32, 'it prints a 256-bit key');
      await server.restart({ TOKEN_ENCRYPTION_KEY: newKey, TOKEN_ENCRYPTION_OLD_KEYS: leakedKey });
      t.equal(await ingest(server, hooks[0]!.id, hooks[0]!.secret), 202, 'nothing stops working with the old key beside the new one');
      t.equal((await broker(agent.token)).statusCode, 200);

      await runIncident(t, server, 'incident-encryption-key-rotate', {});
      await server.restart({ TOKEN_ENCRYPTION_OLD_KEYS: '' });
      t.equal((await broker(agent.token)).statusCode, 200, 'ready and decrypting without the leaked key: everything was re-encrypted');

      const revokedBefore = google.revoked.length;
      const printed = await runIncident(t, server, 'incident-encryption-key-revoke', { SWITCHBOARD_ADMIN_KEY: org.key });
      t.equal(google.revoked.length, revokedBefore + 1, 'the Google grant is revoked at Google');
      t.not((await broker(agent.token)).statusCode, 200, 'no Google token until the owner reconnects');
      const start = printed.find((document) => document.authorization_url);
      await connectGoogle(org.key, start.authorization_url);
      t.equal((await broker(agent.token)).statusCode, 200, 'the new grant works');
      const secrets = printed.filter((document) => document.secret).map((document) => document as { webhook: { id: string }; secret: string });
      t.equal(secrets.length, hooks.length, 'every webhook got a new secret');
      for (const hook of hooks) {
        t.equal(await ingest(server, hook.id, hook.secret), 403, 'the old secret is refused');
        const fresh = secrets.find((document) => document.webhook.id === hook.id)!;
        t.equal(await ingest(server, hook.id, fresh.secret), 202, 'the printed secret verifies');
      }
    });

    await t.test('database exfiltration: every API key and agent token is replaced', async (t) => {
      const org = await organization(server);
      const others = [await createKey(server.client, org.key, 'admin'), await createKey(server.client, org.key, 'read_only')];
      const agents = [await createAgent(server.client, org.key), await createAgent(server.client, org.key)];
      const printed = await runIncident(t, server, ['incident-exfiltration-api-keys', 'incident-exfiltration-agent-tokens'], { SWITCHBOARD_ADMIN_KEY: org.key });
      const newKey = /new admin key \(shown once\): (sbk_\S+)/.exec(printed.stdout)?.[1];
      t.ok(newKey, 'the new admin key is printed once');
      const list = (key: string) => server.client.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(key) });
      t.equal((await list(newKey!)).statusCode, 200, 'the new key works');
      for (const key of [org.key, ...others.map((other) => other.key)]) t.equal((await list(key)).statusCode, 401, 'an old key is refused');
      const heartbeat = (token: string) => server.client.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(token), payload: {} });
      for (const agent of agents) {
        t.equal((await heartbeat(agent.token)).statusCode, 401, 'an old agent token is refused');
        const rotated = printed.find((document) => document.agent?.id === agent.id);
        t.equal((await heartbeat(rotated.token)).statusCode, 200, 'its printed token works');
      }
    });
  });
}
