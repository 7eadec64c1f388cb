// The incident runbook (docs/operations/README.md), run exactly as written against a real server:
// each procedure's commands must contain the leak the way the runbook says they do.
import { randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { asAgent, bearer, createAgent, createKey, createWebhook, TEST_DATABASE_URL } from '../helper.js';
import { startDocServer, type DocServer } from '../support/doc-server.js';
import { printedJson, runnableSnippets, runSnippet } from '../support/doc-snippets.js';
import { githubHeaders } from '../support/signing.js';

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

async function runIncident(t: Test, server: DocServer, name: string, vars: Record<string, string>) {
  const run = await runSnippet(incident(name), { ...server.env, SWITCHBOARD_URL: server.url, ...vars });
  t.equal(run.code, 0, `the runbook's commands exit 0\n${run.stderr}`);
  return printedJson(run.stdout);
}

async function ingest(server: DocServer, webhookId: string, secret: string) {
  const body = JSON.stringify({ incident: randomUUID() });
  const headers = await githubHeaders(secret, body);
  return (await server.client.inject({ method: 'POST', url: `/api/v1/hooks/${webhookId}`, headers, payload: body })).statusCode;
}

t.test('every incident the runbook covers has a runnable block', async (t) => {
  const names = [...snippets.keys()].filter((name) => name.startsWith('incident-'));
  t.same(names.sort(), ['incident-leaked-admin-token', 'incident-leaked-agent-token', 'incident-leaked-api-key', 'incident-leaked-webhook-secret']);
});

if (!TEST_DATABASE_URL) {
  t.comment('skipped: running the incident runbook needs TEST_DATABASE_URL (CLI commands and the server share a Postgres database)');
} else {
  t.test('the incident runbook contains each leak', async (t) => {
    const server = await startDocServer(t);

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
  });
}
