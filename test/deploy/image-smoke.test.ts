// No Docker engine runs here, so this test assembles what the image's final stage holds (read from
// the Dockerfile's COPY lines), with production dependencies only, and runs its CMD the way the
// container does: as an unprivileged user, with the environment `docker compose up` gives the api
// service from a copied .env.example, against a real Postgres server.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import t from 'tap';
import { parse } from 'yaml';
import { isolatedDatabaseEnv, TEST_DATABASE_URL, TEST_REDIS_URL } from '../helper.js';
import { freePort } from '../support/process.js';

const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

const dockerfile = readFileSync('Dockerfile', 'utf8');
const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
const compose = parse(readFileSync('compose.yml', 'utf8')) as { services: { api: { environment: Record<string, string>; healthcheck: { test: string[] } } } };

/** ENV lines of the final stage, with their backslash continuations joined. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const block of finalStage.replace(/\\\n/g, ' ').match(/^ENV .+$/gm) ?? []) {
    for (const [, name, value] of block.slice(4).matchAll(/(\w+)=(\S+)/g)) env[name!] = value!;
  }
  return env;
}

/** Copies what the final stage's COPY lines put in /app into `dir`; node_modules comes from `npm ci --omit=dev`. */
function assembleImage(dir: string): void {
  for (const line of finalStage.match(/^COPY .+$/gm) ?? []) {
    const parts = line.split(/\s+/).filter((part) => !part.startsWith('--chown'));
    const from = parts.find((part) => part.startsWith('--from='))?.slice('--from='.length);
    const [source, target] = parts.filter((part) => part !== 'COPY' && !part.startsWith('--'));
    if (from === 'prod-deps') continue;
    const local = from === 'build' ? source!.replace(/^\/app\//, '') : source!;
    cpSync(local, join(dir, target === './' ? local : target!), { recursive: true });
  }
  // The prod-deps stage: the lockfile, `npm ci --omit=dev`; only node_modules reaches the final stage.
  cpSync('package-lock.json', join(dir, 'package-lock.json'));
  const install = spawnSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: dir, encoding: 'utf8' });
  if (install.status !== 0) throw new Error(`npm ci --omit=dev failed:\n${install.stderr}`);
  rmSync(join(dir, 'package-lock.json'));
}

if (!TEST_DATABASE_URL) {
  t.comment('skipped: the image smoke test needs TEST_DATABASE_URL (compose runs the api against Postgres)');
} else {
  t.test('the image CMD comes up ready as a non-root user with production dependencies and the compose environment', async (t) => {
    const image = mkdtempSync(join(tmpdir(), 'switchboard-image-'));
    const data = mkdtempSync(join(tmpdir(), 'switchboard-data-'));
    t.teardown(() => {
      rmSync(image, { recursive: true, force: true });
      rmSync(data, { recursive: true, force: true });
    });
    chmodSync(image, 0o755);
    assembleImage(image);
    if (isRoot) chownSync(data, NOBODY.uid, NOBODY.gid);

    t.ok(existsSync(join(image, 'dist/server.js')), 'the built server is in the image');
    t.ok(existsSync(join(image, 'drizzle/meta/_journal.json')), 'the migrations are in the image');
    for (const absent of ['src', 'test', 'node_modules/tap', 'node_modules/typescript', 'node_modules/drizzle-kit']) {
      t.notOk(existsSync(join(image, absent)), `${absent} is not in the image`);
    }

    // compose: the image's ENV, then env_file (.env copied from .env.example), then `environment`.
    const database = await isolatedDatabaseEnv(t);
    const port = await freePort();
    const environment = { ...compose.services.api.environment };
    environment.DATABASE_URL = database.DATABASE_URL!;
    environment.DATA_DIR = data;
    environment.PORT = String(port);
    if (TEST_REDIS_URL) environment.REDIS_URL = TEST_REDIS_URL;
    else delete environment.REDIS_URL;
    const env: Record<string, string | undefined> = { PATH: process.env.PATH, ...imageEnv(), ...parseEnv(readFileSync('.env.example', 'utf8')), ...environment };
    t.equal(env.HOST, '0.0.0.0', 'listens on every interface inside the container');

    const [command, ...args] = JSON.parse(/^CMD (.+)$/m.exec(finalStage)![1]!) as string[];
    t.equal(command, 'node');
    // `env -u NODE_OPTIONS`: tap instruments child processes through NODE_OPTIONS; the image has none.
    const asInImage = (argv: string[]) => ['-u', 'NODE_OPTIONS', process.execPath, ...argv];
    const server = spawn('env', asInImage(args), { cwd: image, env, stdio: 'pipe', ...(isRoot ? NOBODY : {}) });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(server, 'exit');
    t.teardown(() => server.exitCode === null && server.kill('SIGKILL'));

    // The compose healthcheck (its port is the container's 8080; here the free one).
    const healthcheck = compose.services.api.healthcheck.test.slice(1).map((arg) => arg.replace(':8080/', `:${port}/`));
    const probe = () => spawnSync(process.execPath, healthcheck.slice(1), { encoding: 'utf8', timeout: 5000 }).status;
    const deadline = Date.now() + 30_000;
    while (probe() !== 0) {
      if (server.exitCode !== null || Date.now() > deadline) t.fail(`not ready:\n${output}`);
      if (server.exitCode !== null || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    t.pass('the compose /readyz healthcheck passes');

    const dockerHealthcheck = /HEALTHCHECK[\s\S]*?CMD (\[.+\])/.exec(finalStage)![1]!;
    const [, ...healthArgs] = JSON.parse(dockerHealthcheck) as string[];
    t.equal(spawnSync(process.execPath, healthArgs, { env: { PORT: String(port) }, timeout: 5000 }).status, 0, 'the image HEALTHCHECK on /healthz passes');

    const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
    t.notMatch(status, /^Uid:\s+0\s/m, 'the server does not run as root');
    const keyFile = join(data, 'encryption.key');
    t.ok(existsSync(keyFile), 'with the example .env (development), the encryption key is generated into the data volume');
    t.equal(statSync(keyFile).mode & 0o077, 0, 'the generated key is readable by its owner only');

    // The CLI from the same image bootstraps an organization, and its key works against the server.
    const cli = spawnSync('env', asInImage(['dist/cli/index.js', 'org', 'create', '--name', 'Smoke Test']), { cwd: image, env, encoding: 'utf8', ...(isRoot ? NOBODY : {}) });
    t.equal(cli.status, 0, cli.stderr);
    const apiKey = /sbk_\S+/.exec(cli.stdout)?.[0];
    t.ok(apiKey, 'org create prints an API key');
    const agents = await fetch(`http://127.0.0.1:${port}/api/v1/agents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'smoke-agent' }),
    });
    t.equal(agents.status, 201, 'the API works against Postgres');

    server.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    t.equal(code, 0, 'docker stop (SIGTERM) drains and exits 0');
  });
}
