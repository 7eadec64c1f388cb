// Every command block the docs mark `sh runnable <name>` runs here, exactly as written, against a
// real server, and its effect is checked. The incident runbook's blocks run in incidents.test.ts.
import t, { type Test } from 'tap';
import { bearer, createAgent, createWebhook, TEST_DATABASE_URL } from '../helper.js';
import { startDocServer, type DocServer } from '../support/doc-server.js';
import { printedJson, runnableSnippets, runSnippet } from '../support/doc-snippets.js';

interface Scenario {
  /** Shell variables the block expects beyond the deployment's environment. */
  setup?(server: DocServer): Promise<Record<string, string>>;
  check(t: Test, output: { stdout: string; documents: any[] }, server: DocServer, vars: Record<string, string>): Promise<void>;
}

async function organization(server: DocServer, name = `docs-${Math.random().toString(36).slice(2, 8)}`) {
  const res = await server.client.inject({ method: 'POST', url: '/api/v1/organizations', headers: bearer(server.adminToken()), payload: { name } });
  const body = res.json();
  return { id: body.organization.id as string, key: body.api_key.key as string, keyId: body.api_key.id as string };
}

/** The docs create an organization called "Acme"; remove an earlier one so the block can run again. */
async function withoutAcme(server: DocServer) {
  const res = await server.client.inject({ method: 'GET', url: '/api/v1/organizations?limit=100', headers: bearer(server.adminToken()) });
  for (const org of res.json().data) {
    if (org.slug === 'acme') await server.client.inject({ method: 'DELETE', url: `/api/v1/organizations/${org.id}`, headers: bearer(server.adminToken()) });
  }
  return {};
}

async function deliveriesOf(server: DocServer, key: string, webhookId: string): Promise<any[]> {
  const res = await server.client.inject({ method: 'GET', url: `/api/v1/webhooks/${webhookId}/deliveries`, headers: bearer(key) });
  return res.json().data;
}

async function withWebhook(server: DocServer) {
  const org = await organization(server);
  const agent = await createAgent(server.client, org.key);
  const webhook = await createWebhook(server.client, org.key, { agent_id: agent.id });
  return { SWITCHBOARD_ADMIN_KEY: org.key, AGENT_ID: agent.id, WEBHOOK_ID: webhook.id, SECRET: webhook.secret };
}

const scenarios: Record<string, Scenario> = {
  health: {
    async check(t, { documents }) {
      t.match(documents, [{ status: 'ok' }, { status: 'ready' }]);
    },
  },
  metrics: {
    async check(t, { stdout }) {
      t.match(stdout, /^switchboard_http_request_duration_seconds_count\{.*route="\/healthz".*\} \d+/m, 'request counters by route template');
    },
  },
  'org-create-cli': {
    setup: withoutAcme,
    async check(t, { stdout }) {
      t.match(stdout, /sbk_[0-9a-f]{16}_\S{43}/, 'prints the first admin API key');
    },
  },
  'org-create-http': {
    async setup(server) {
      return { ...(await withoutAcme(server)), ADMIN_TOKEN: server.adminToken() };
    },
    async check(t, { documents }, server) {
      t.match(documents[0], { organization: { slug: 'acme' }, api_key: { key: /^sbk_/ } });
      const res = await server.client.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(documents[0].api_key.key) });
      t.equal(res.statusCode, 200, 'the printed key works');
    },
  },
  'create-webhook': {
    async setup(server) {
      const org = await organization(server);
      const agent = await createAgent(server.client, org.key);
      return { SWITCHBOARD_ADMIN_KEY: org.key, AGENT_ID: agent.id };
    },
    async check(t, { documents }, _server, vars) {
      t.match(documents[0], { webhook: { agent_id: vars.AGENT_ID, endpoint_url: /\/api\/v1\/hooks\// }, secret: /^whsec_/ });
    },
  },
  'sign-github': {
    setup: withWebhook,
    async check(t, { documents }, server, vars) {
      t.match(documents[0], { delivery_id: String, duplicate: false });
      t.equal((await deliveriesOf(server, vars.SWITCHBOARD_ADMIN_KEY!, vars.WEBHOOK_ID!)).length, 1, 'the delivery is stored');
    },
  },
  'sign-standard-webhooks': {
    setup: withWebhook,
    async check(t, { documents }, server, vars) {
      t.match(documents[0], { delivery_id: String, duplicate: false });
      t.equal((await deliveriesOf(server, vars.SWITCHBOARD_ADMIN_KEY!, vars.WEBHOOK_ID!)).length, 1, 'the delivery is stored');
    },
  },
  'rotate-webhook-secret': {
    setup: withWebhook,
    async check(t, { documents }, _server, vars) {
      t.match(documents[0], { secret: /^whsec_/ });
      t.not(documents[0].secret, vars.SECRET, 'a new secret');
    },
  },
  'oauth-start': {
    async setup(server) {
      return { SWITCHBOARD_ADMIN_KEY: (await organization(server)).key };
    },
    async check(t, { documents }) {
      t.match(documents[0], { authorization_url: /^https:\/\/accounts\.google\.com\/.*code_challenge_method=S256/, state: String, expires_at: String });
    },
  },
};

const snippets = runnableSnippets();

/** Blocks run by their own tests: incidents.test.ts and backup-restore.test.ts. */
const runElsewhere = (name: string) => name.startsWith('incident-') || name === 'backup' || name === 'restore';

t.test('every runnable block in the docs has a scenario here or in its own test, and the reverse', async (t) => {
  for (const name of snippets.keys()) if (!runElsewhere(name)) t.ok(name in scenarios, `${name} has a scenario`);
  for (const name of Object.keys(scenarios)) t.ok(snippets.has(name), `${name} is still in the docs`);
});

if (!TEST_DATABASE_URL) {
  t.comment('skipped: running the docs needs TEST_DATABASE_URL (CLI commands and the server share a Postgres database)');
} else {
  t.test('the documented commands work against a real server', async (t) => {
    const server = await startDocServer(t);
    for (const [name, scenario] of Object.entries(scenarios)) {
      const snippet = snippets.get(name);
      if (!snippet) continue;
      await t.test(`${name} (${snippet.file}:${snippet.line})`, async (t) => {
        const vars = (await scenario.setup?.(server)) ?? {};
        const run = await runSnippet(snippet, { ...server.env, SWITCHBOARD_URL: server.url, ...vars });
        t.equal(run.code, 0, `exits 0\n${run.stderr}`);
        await scenario.check(t, { stdout: run.stdout, documents: printedJson(run.stdout) }, server, vars);
      });
    }
  });
}
