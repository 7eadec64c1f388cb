// `npm test`: runs the whole tap suite on the embedded database, then — when TEST_DATABASE_URL
// is set — the same suite again on that real Postgres server. Extra arguments go to tap.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const backends = [{ name: 'embedded (PGlite)', env: { TEST_DATABASE_URL: '' } }];
if (process.env.TEST_DATABASE_URL) {
  backends.push({ name: `postgres (${new URL(process.env.TEST_DATABASE_URL).host})`, env: {} });
} else {
  process.stdout.write('TEST_DATABASE_URL is not set: running on the embedded database only.\n');
}

// Tests that start dist/server.js need a current build.
spawnSync(process.execPath, ["scripts/ensure-build.mjs"], { stdio: "inherit" });

let failed = false;
for (const backend of backends) {
  process.stdout.write(`\n=== test suite on ${backend.name} ===\n`);
  const result = spawnSync('node_modules/.bin/tap', args, {
    stdio: 'inherit',
    env: { ...process.env, ...backend.env },
  });
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
