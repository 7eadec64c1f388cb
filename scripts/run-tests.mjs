// `npm test`: runs the whole tap suite on the embedded database, then — when TEST_DATABASE_URL
// is set — the same suite again on that real Postgres server. Extra arguments go to tap.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

// Files whose behaviour does not depend on TEST_DATABASE_URL (they run an embedded database or a
// Postgres cluster of their own): the second pass on Postgres leaves them out.
const BACKEND_INDEPENDENT = ['test/server/process.test.ts', 'test/faults/postgres-restart.test.ts'];

const args = process.argv.slice(2);
const backends = [{ name: 'embedded (PGlite)', env: { TEST_DATABASE_URL: '' } }];
if (process.env.TEST_DATABASE_URL) {
  const excluded = [...JSON.parse(readFileSync('package.json', 'utf8')).tap.exclude, ...BACKEND_INDEPENDENT];
  // Coverage is measured (and its thresholds enforced) on the embedded pass, which runs every file;
  // the second pass only proves the same behaviour on a real server, without the instrumentation cost.
  const extra = [...(args.length === 0 ? excluded.map((pattern) => `--exclude=${pattern}`) : []), '--disable-coverage'];
  backends.push({ name: `postgres (${new URL(process.env.TEST_DATABASE_URL).host})`, env: {}, extra });
} else {
  process.stdout.write('TEST_DATABASE_URL is not set: running on the embedded database only.\n');
}

// Tests that start dist/server.js need a current build.
spawnSync(process.execPath, ["scripts/ensure-build.mjs"], { stdio: "inherit" });

let failed = false;
for (const backend of backends) {
  process.stdout.write(`\n=== test suite on ${backend.name} ===\n`);
  const result = spawnSync('node_modules/.bin/tap', [...args, ...(backend.extra ?? [])], {
    stdio: 'inherit',
    env: { ...process.env, ...backend.env },
  });
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
