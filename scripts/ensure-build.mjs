// Builds dist/ when it is missing or older than src/ (used by `npm start`, `npm run cli`,
// `npm run migrate`). In an image that ships only dist/, there is nothing to check.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

if (existsSync('src')) {
  const marker = 'dist/server.js';
  const stale = !existsSync(marker) || newest('src') > statSync('dist/.tsbuildinfo', { throwIfNoEntry: false })?.mtimeMs;
  if (stale) {
    process.stderr.write('building dist/ (src/ changed)…\n');
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  }
}
