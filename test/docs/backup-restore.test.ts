// The backup and restore drill of the runbook, run as written: pg_dump a database holding every kind
// of credential, pg_restore it into a fresh database, start Switchboard on the copy and check that
// everything still authenticates, verifies and decrypts — and that a wrong key is reported plainly.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { asAgent, bearer, createAgent, createKey, createWebhook, isolatedDatabaseEnv, TEST_DATABASE_URL } from '../helper.js';
import { startDocServer } from '../support/doc-server.js';
import { runCommand } from '../support/process.js';
import { runnableSnippets, runSnippet } from '../support/doc-snippets.js';
import { startFakeGoogle } from '../support/fake-google.js';
import { githubHeaders } from '../support/signing.js';

const CALLBACK = 'http://127.0.0.1:8080/api/v1/oauth/google/callback';
const snippets = runnableSnippets();

if (!TEST_DATABASE_URL) {
  t.comment('skipped: the backup drill needs TEST_DATABASE_URL (pg_dump and pg_restore work on a Postgres server)');
} else {
  t.test('a pg_dump restored into a fresh database serves every credential it held', async (t) => {
    const google = await startFakeGoogle(CALLBACK);
    t.teardown(() => google.close());
    const server = await startDocServer(t, google.env);
    const http = server.client;

    // A database with one of everything.
    const created = await http.inject({ method: 'POST', url: '/api/v1/organizations', headers: bearer(server.adminToken()), payload: { name: `drill-${randomUUID().slice(0, 8)}` } });
    const adminKey = created.json().api_key.key as string;
    const readOnly = await createKey(http, adminKey, 'read_only');
    const agent = await createAgent(http, adminKey);
    const webhook = await createWebhook(http, adminKey, { agent_id: agent.id });
    const rotated = await http.inject({ method: 'POST', url: `/api/v1/webhooks/${webhook.id}/secret`, headers: bearer(adminKey), payload: { overlap_seconds: 86_400 } });
    const newSecret = rotated.json().secret as string;
    const sent: { id: string; sha256: string }[] = [];
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify({ drill: i, nonce: randomBytes(8).toString('hex') });
      const res = await http.inject({ method: 'POST', url: `/api/v1/hooks/${webhook.id}`, headers: await githubHeaders(newSecret, body), payload: body });
      t.equal(res.statusCode, 202);
      sent.push({ id: res.json().delivery_id, sha256: createHash('sha256').update(body).digest('hex') });
    }
    const start = await http.inject({ method: 'GET', url: '/api/v1/oauth/google/start?redirect=false', headers: bearer(adminKey) });
    const callback = google.consent(start.json().authorization_url).replace('http://127.0.0.1:8080', '');
    t.equal((await http.inject({ method: 'GET', url: callback })).statusCode, 200, 'Google connected');

    // Back up, restore into a fresh database, start on the copy with the same key.
    const dir = mkdtempSync(join(tmpdir(), 'switchboard-backup-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const files = { BACKUP_FILE: join(dir, 'switchboard.dump'), RESTORE_DATABASE_URL: (await isolatedDatabaseEnv(t)).DATABASE_URL! };
    for (const name of ['backup', 'restore']) {
      const run = await runSnippet(snippets.get(name)!, { ...server.env, ...files });
      t.equal(run.code, 0, `${name} exits 0\n${run.stderr}`);
    }
    const original = server.env.DATABASE_URL!;
    await server.restart({ DATABASE_URL: files.RESTORE_DATABASE_URL });
    t.not(server.env.DATABASE_URL, original, 'the server now runs on the restored copy');

    t.equal((await http.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(adminKey) })).statusCode, 200, 'the admin API key authenticates');
    t.equal((await http.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(readOnly.key) })).statusCode, 200, 'the read-only key authenticates');
    const heartbeat = await http.inject({ method: 'POST', url: '/api/v1/agent/heartbeat', headers: asAgent(agent.token), payload: {} });
    t.equal(heartbeat.statusCode, 200, 'the agent token authenticates');
    for (const [label, secret] of [['the rotated secret', newSecret], ['the previous secret, within its overlap', webhook.secret]] as const) {
      const body = JSON.stringify({ after: 'restore', label });
      const res = await http.inject({ method: 'POST', url: `/api/v1/hooks/${webhook.id}`, headers: await githubHeaders(secret, body), payload: body });
      t.equal(res.statusCode, 202, `${label} verifies signatures`);
    }
    const leased = await http.inject({ method: 'POST', url: '/api/v1/agent/deliveries/lease', headers: asAgent(agent.token), payload: { limit: 100 } });
    const bodies = new Map(leased.json().data.map((item: { id: string; body_base64: string }) => [item.id, createHash('sha256').update(Buffer.from(item.body_base64, 'base64')).digest('hex')]));
    for (const delivery of sent) t.equal(bodies.get(delivery.id), delivery.sha256, `delivery ${delivery.id} came back byte for byte`);
    const broker = await http.inject({ method: 'POST', url: '/api/v1/agent/credentials/google/token', headers: asAgent(agent.token) });
    t.equal(broker.statusCode, 200, 'the broker still issues Google access tokens');
    t.match(broker.json(), { access_token: /^ya29\./ });

    // The same copy with another key: the secrets are there but unreadable, and it says so.
    await server.restart({ TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64') }, '/healthz');
    const ready = await fetch(`${server.url}/readyz`);
    t.equal(ready.status, 503);
    t.match(await ready.json(), { checks: { keyring: { status: 'fail', error: 'encryption_key_missing', unknown_key_ids: [String] } } }, 'readiness names the missing key');
    const agents = await http.inject({ method: 'GET', url: '/api/v1/agents', headers: bearer(adminKey) });
    t.equal(agents.statusCode, 200, 'hashed credentials still authenticate: nothing looks deleted');
    const secretUse = await http.inject({ method: 'POST', url: `/api/v1/hooks/${webhook.id}`, headers: await githubHeaders(newSecret, '{}'), payload: '{}' });
    t.match(secretUse.json(), { code: 'encryption_key_unavailable' }, 'an encrypted secret answers 503 encryption_key_unavailable, not a signature error');
    const doctor = await runCommand(['dist/cli/index.js', 'doctor', '--json'], server.env);
    t.equal(doctor.code, 2, 'doctor fails');
    t.ok(
      JSON.parse(doctor.stdout).findings.some((finding: { code: string; severity: string }) => finding.code === 'keyring_canary_failed' && finding.severity === 'failure'),
      'doctor names the keyring failure',
    );
  });
}
