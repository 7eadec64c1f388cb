import t from 'tap';
import { asAdmin, bearer, build, createAgent, createKey, createOrg, createWebhook, randomName, TEST_DATABASE_URL } from '../helper.js';

t.test('the platform admin creates an organization with a first admin key shown once', async (t) => {
  const app = await build(t);
  const name = randomName('Acme Corp');
  const res = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name } });
  t.equal(res.statusCode, 201);
  const body = res.json();
  t.match(body.organization, { id: String, name, slug: String, created_at: String });
  t.match(body.api_key, { id: String, name: String, role: 'admin', status: 'active', key: /^sbk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/ });
  t.equal(body.api_key.prefix, body.api_key.key.slice(0, 20));
  const own = await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(body.api_key.key) });
  t.equal(own.statusCode, 200);
  t.same(own.json().organization, body.organization);
  const again = await app.inject({ method: 'GET', url: `/api/v1/organizations/${body.organization.id}`, headers: asAdmin });
  t.same(again.json(), { organization: body.organization }, 'the key is never shown again');
});

t.test('slugs: explicit ones must be free (409), derived ones get a suffix on collision', async (t) => {
  const app = await build(t);
  const slug = randomName('acme');
  const first = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name: 'A', slug } });
  t.equal(first.json().organization.slug, slug);
  const clash = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name: 'B', slug } });
  t.equal(clash.statusCode, 409);
  t.equal(clash.json().code, 'slug_taken');
  const derived = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name: slug } });
  t.equal(derived.statusCode, 201);
  t.match(derived.json().organization.slug, new RegExp(`^${slug}-[0-9a-f]{6}$`));
});

t.test('a derived slug cut short before its suffix never ends up with a double hyphen', async (t) => {
  const app = await build(t);
  // 39 letters, then a word: the first 40 characters of the slug end in a hyphen.
  const name = `${'a'.repeat(39)} ${randomName('b')}`;
  const slugs = [];
  for (let i = 0; i < 2; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name } });
    t.equal(res.statusCode, 201);
    slugs.push(res.json().organization.slug as string);
  }
  t.match(slugs[1], new RegExp(`^${'a'.repeat(39)}-[0-9a-f]{6}$`), 'cut, trailing hyphen dropped, suffixed');
  for (const slug of slugs) t.match(slug, /^[a-z0-9]+(-[a-z0-9]+)*$/, `${slug}: single hyphens, as an explicit slug must have`);
});

t.test('lists organizations newest first with cursor pagination', async (t) => {
  const app = await build(t);
  const created = [await createOrg(app), await createOrg(app), await createOrg(app)];
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2';
    const res = await app.inject({ method: 'GET', url: `/api/v1/organizations${query}`, headers: asAdmin });
    t.equal(res.statusCode, 200);
    const body = res.json();
    t.ok(body.data.length <= 2);
    seen.push(...body.data.map((org: { id: string }) => org.id));
    cursor = body.next_cursor;
  } while (cursor && seen.length < 10_000);
  const positions = created.map((org) => seen.indexOf(org.id));
  t.ok(positions.every((position) => position >= 0), 'every organization is listed');
  t.ok(positions[0]! > positions[1]! && positions[1]! > positions[2]!, 'newest first');
  t.equal(new Set(seen).size, seen.length, 'no organization twice');
});

t.test('deleting an organization removes everything it owns', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const other = await createKey(app, org.adminKey, 'read_only');
  const res = await app.inject({ method: 'DELETE', url: `/api/v1/organizations/${org.id}`, headers: asAdmin });
  t.equal(res.statusCode, 204);
  for (const key of [org.adminKey, other.key]) {
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/organization', headers: bearer(key) })).statusCode, 401);
  }
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/organizations/${org.id}`, headers: asAdmin })).statusCode, 404);
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/organizations/${org.id}`, headers: asAdmin })).statusCode, 404);
});

t.test('the platform API refuses missing, wrong and organization credentials with 401 and a Bearer challenge', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  for (const headers of [{}, bearer('wrong-admin-token-0123456789abcdefghijkl'), bearer(org.adminKey), { authorization: 'Basic Zm9vOmJhcg==' }]) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/organizations', headers });
    t.equal(res.statusCode, 401);
    t.equal(res.json().code, 'unauthorized');
    t.match(String(res.headers['www-authenticate']), /^Bearer/);
  }
});

t.test('without ADMIN_TOKEN the platform API answers 503 admin_not_configured and the server still runs', async (t) => {
  const app = await build(t, { env: { ADMIN_TOKEN: '' } });
  const res = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name: 'x' } });
  t.equal(res.statusCode, 503);
  t.equal(res.json().code, 'admin_not_configured');
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
});

t.test('organization names are stored verbatim, SQL-looking or not', async (t) => {
  const app = await build(t);
  const name = `Robert'); DROP TABLE organizations;-- ${randomName()}`;
  const res = await app.inject({ method: 'POST', url: '/api/v1/organizations', headers: asAdmin, payload: { name } });
  t.equal(res.statusCode, 201);
  const got = await app.inject({ method: 'GET', url: `/api/v1/organizations/${res.json().organization.id}`, headers: asAdmin });
  t.equal(got.json().organization.name, name);
});

t.test(
  'deleting an organization while its keys write to it: every write either lands first or finds the organization gone; no deadlock, no 500',
  { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (concurrent transactions; the embedded database runs one at a time)' },
  async (t) => {
    const app = await build(t);
    const statuses = new Map<number, number>();
    for (let round = 0; round < 6; round++) {
      const org = await createOrg(app);
      const agents = await Promise.all(Array.from({ length: 8 }, () => createAgent(app, org.adminKey)));
      const hooks = await Promise.all(Array.from({ length: 3 }, () => createWebhook(app, org.adminKey)));
      const keys = await Promise.all(Array.from({ length: 3 }, () => createKey(app, org.adminKey, 'read_only')));
      const admin = bearer(org.adminKey);
      const writes = [
        ...agents.map((agent) => app.inject({ method: 'PATCH', url: `/api/v1/agents/${agent.id}`, headers: admin, payload: { name: 'renamed' } })),
        ...hooks.map((hook) => app.inject({ method: 'PATCH', url: `/api/v1/webhooks/${hook.id}`, headers: admin, payload: { enabled: false } })),
        ...keys.map((key) => app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${key.id}`, headers: admin })),
        app.inject({ method: 'DELETE', url: `/api/v1/organizations/${org.id}`, headers: asAdmin }),
      ];
      const answers = await Promise.all(writes);
      t.equal(answers.at(-1)!.statusCode, 204, `round ${round}: the organization is deleted`);
      for (const res of answers) statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    }
    const seen = [...statuses.keys()].sort();
    t.ok(
      seen.every((status) => [200, 204, 401, 404].includes(status)),
      `writes answer as before or after the deletion (200/204, or 401/404 once it is gone), never 409 or 500: ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
  },
);
