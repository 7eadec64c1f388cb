// The Postgres handle opens its own sockets (TCP_NODELAY, db/client.ts): the driver's host
// handling must still work through them.
import { once } from 'node:events';
import { createServer } from 'node:net';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { openDatabase, rowsOf } from '../../src/db/client.js';
import { isDatabaseUnavailable } from '../../src/db/errors.js';
import { TEST_DATABASE_URL } from '../helper.js';

const needsPostgres = { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL (a Postgres server)' };

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('with several hosts, connections try them in turn: past one that refuses, the next answers', { ...needsPostgres, timeout: 30_000 }, async (t) => {
  const target = new URL(TEST_DATABASE_URL!);
  // URL cannot hold two hosts; the driver parses this form itself.
  const url = TEST_DATABASE_URL!.replace(target.host, `127.0.0.1:${await closedPort()},${target.hostname}:${target.port || 5432}`);
  const database = await openDatabase({ databaseUrl: url, poolMax: 1, connectTimeoutMs: 5000, dataDir: 'memory://' });
  t.teardown(() => database.close());
  const outcomes: string[] = [];
  for (let i = 0; i < 4 && outcomes.at(-1) !== 'answered'; i++) {
    outcomes.push(
      await database.db.execute(sql`select 1 as one`).then(
        (result) => (rowsOf<{ one: number }>(result)[0]?.one === 1 ? 'answered' : 'wrong answer'),
        (error: unknown) => (isDatabaseUnavailable(error) ? 'refused' : String(error)),
      ),
    );
  }
  t.equal(outcomes.at(-1), 'answered', `the second host answers (${outcomes.join(', ')})`);
  t.ok(outcomes.length <= 2, 'after at most one refusal');
});

t.test('a host that refuses is a database-unavailable error (503), not a hang', async (t) => {
  const database = await openDatabase({ databaseUrl: `postgres://postgres@127.0.0.1:${await closedPort()}/none`, poolMax: 1, connectTimeoutMs: 2000, dataDir: 'memory://' });
  t.teardown(() => database.close());
  const error = await database.db.execute(sql`select 1`).then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(isDatabaseUnavailable(error), `unavailable: ${String(error)}`);
});
