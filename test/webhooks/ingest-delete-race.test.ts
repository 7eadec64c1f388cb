// A webhook deleted while a delivery to it is being stored: the INSERT has already read the row
// (it was there), and its foreign-key check waits for the deleting transaction, then finds the row
// gone. The sender is told the webhook is gone (404), not a conflict and not a 500.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { build, createOrg, createWebhook, sleep, TEST_DATABASE_URL } from '../helper.js';
import { githubHeaders } from '../support/signing.js';

const needsPostgres = { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a second connection holds the delete open; the embedded database is one connection)' };

t.test('a webhook deleted while its delivery waits on the foreign-key check answers 404', needsPostgres, async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  const body = JSON.stringify({ action: 'opened' });
  const headers = { ...(await githubHeaders(hook.secret, body)), 'x-github-delivery': randomUUID() };
  // The webhook is read (and cached) by a first delivery, as on a busy endpoint.
  t.equal((await app.inject({ method: 'POST', url: hook.url, headers: { ...headers, 'x-github-delivery': randomUUID() }, payload: body })).statusCode, 202);

  const other = (await import('postgres')).default(TEST_DATABASE_URL!, { max: 2, onnotice: () => {} });
  t.teardown(() => other.end());
  const deleter = await other.reserve();
  await deleter`begin`;
  await deleter`delete from webhooks where id = ${hook.id}`;
  const answer = app.inject({ method: 'POST', url: hook.url, headers, payload: body });
  // Wait until the INSERT is blocked on the deleted row's lock, then let the delete commit.
  let waiting = 0;
  for (let i = 0; i < 200 && waiting === 0; i++) {
    await sleep(25);
    const [row] = await other<{ waiting: number }[]>`select count(*)::int as waiting from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database() and query ilike '%json_to_recordset%'`;
    waiting = row!.waiting;
  }
  t.equal(waiting, 1, 'the INSERT waited for the delete');
  await deleter`commit`;
  deleter.release();

  const res = await answer;
  t.equal(res.statusCode, 404, res.body);
  t.equal(res.json().code, 'not_found');
  const [row] = await other<{ stored: number }[]>`select count(*)::int as stored from webhook_deliveries where webhook_id = ${hook.id}`;
  t.equal(row!.stored, 0, 'nothing stored for the deleted webhook');
});
