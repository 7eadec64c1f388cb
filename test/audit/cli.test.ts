// `npm run cli -- audit verify|status` as a process: exit codes, what it prints, and a break found
// after a row was edited directly in SQL. Needs a current build (npm test makes one).
import { sql } from 'drizzle-orm';
import t from 'tap';
import { openDatabase, rowsOf } from '../../src/db/client.js';
import { isolatedDatabaseEnv } from '../helper.js';
import { runCommand } from '../support/process.js';

// Each command is a process of its own that, embedded, opens PGlite from disk: slow, not stuck.
t.setTimeout(300_000);

t.test('audit verify exits 0 on an intact log and 1 naming the first broken event; audit status prints the heads', async (t) => {
  const env = await isolatedDatabaseEnv(t, { migrated: true });
  const cli = (...args: string[]) => runCommand(['dist/cli/index.js', ...args], env);

  const created = await cli('org', 'create', '--name', 'Acme', '--json');
  const other = await cli('org', 'create', '--name', 'Globex', '--json');
  const acme = JSON.parse(created.stdout).organization_id as string;
  const globex = JSON.parse(other.stdout).organization_id as string;

  const intact = await cli('audit', 'verify');
  t.equal(intact.code, 0, intact.stderr);
  t.match(intact.stdout, /^platform: ok, 2 events, head #2 [0-9a-f]{64} \(event [0-9a-f-]{36}\)$/m);
  t.match(intact.stdout, `${acme}: ok, 1 events, head #1 `);
  t.match(intact.stdout, 'All 3 audit chains verify.');

  const status = await cli('audit', 'status', '--json');
  t.equal(status.code, 0);
  const heads = JSON.parse(status.stdout) as { chain: string; seq: number; hash: string }[];
  t.same(heads.map((head) => [head.chain, head.seq]), [['platform', 2], ...[[acme, 1], [globex, 1]].sort()]);
  const text = await cli('audit', 'status');
  t.match(text.stdout, new RegExp(`^platform  #2  ${heads[0]!.hash}  event [0-9a-f-]{36}  \\d{4}-`, 'm'));

  // Edit Acme's first event behind Switchboard's back.
  const database = await openDatabase({ databaseUrl: env.DATABASE_URL || undefined, poolMax: 1, connectTimeoutMs: 5000, dataDir: env.DATA_DIR ?? 'memory://' });
  const [edited] = rowsOf<{ id: string }>(await database.db.execute(sql`update audit_events set actor_id = 'someone-else' where organization_id = ${acme} returning id`));
  await database.close();
  const editedId = edited!.id;

  const broken = await cli('audit', 'verify');
  t.equal(broken.code, 1);
  t.match(broken.stdout, `${acme}: BROKEN at event ${editedId} (seq 1): hash mismatch`);
  t.match(broken.stdout, 'platform: ok');
  t.match(broken.stdout, '1 of 3 audit chains are broken');

  const json = await cli('audit', 'verify', '--json');
  t.equal(json.code, 1);
  const report = JSON.parse(json.stdout);
  t.equal(report.ok, false);
  t.match(
    report.chains.find((chain: { chain: string }) => chain.chain === acme),
    { ok: false, events: 1, head: null, first_break: { event_id: editedId, seq: 1, reason: 'hash_mismatch' } },
  );

  t.equal((await cli('audit', 'verify', '--org', globex)).code, 0, 'another organization still verifies');
  const unknown = await cli('audit', 'verify', '--org', '00000000-0000-7000-8000-000000000000');
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, 'no organization 00000000-0000-7000-8000-000000000000');
  const malformed = await cli('audit', 'verify', '--org', 'acme');
  t.equal(malformed.code, 2);
  t.match(malformed.stderr, '--org must be an organization id');
});
