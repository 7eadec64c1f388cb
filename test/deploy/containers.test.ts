// No Docker engine runs here, so the container files are checked structurally: what `docker
// compose up` with a copied .env.example relies on, and what the image must (not) contain.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import { EnvSchema } from '../../src/config.js';

const dockerfile = readFileSync('Dockerfile', 'utf8');
const compose = parse(readFileSync('compose.yml', 'utf8')) as {
  services: Record<string, Record<string, any>>;
  volumes: Record<string, unknown>;
};
const envExample = readFileSync('.env.example', 'utf8');
const configurationDoc = readFileSync('docs/reference/configuration.md', 'utf8');
const dockerignore = readFileSync('.dockerignore', 'utf8').split('\n');
const variables = Object.keys(EnvSchema.shape);

t.test('the Dockerfile builds in one stage and runs production dependencies as a non-root user', async (t) => {
  const stages = dockerfile.match(/^FROM .+$/gm) ?? [];
  t.ok(stages.length >= 2, 'multi-stage');
  for (const stage of stages) t.match(stage, /^FROM node:22[-\w.]*/, 'Node 22 LTS base');
  t.match(dockerfile, /npm ci --omit=dev/, 'production dependencies only in the final image');
  const final = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  t.match(final, /^USER (?!root)\w+/m, 'runs as a non-root user');
  t.match(final, /HOST=0\.0\.0\.0/);
  t.match(final, /HEALTHCHECK[\s\S]*\/healthz/);
  t.match(final, /^STOPSIGNAL SIGTERM/m);
  t.match(final, /^CMD \["node", "dist\/server\.js"\]/m, 'node is PID 1 and gets the signal');
  t.notMatch(final, /COPY[^\n]*\b(src|test)\b/, 'no sources or tests in the final image');
  t.notMatch(dockerfile, /(ADMIN_TOKEN|TOKEN_ENCRYPTION_KEY|CLIENT_SECRET|PASSWORD)=/, 'no secrets baked in');
  for (const entry of ['node_modules', 'test', '.env', '.git']) t.ok(dockerignore.includes(entry), `.dockerignore has ${entry}`);
});

t.test('compose.yml: Postgres 17 with a named volume, Redis, and the api depending on both being healthy', async (t) => {
  const { db, redis, api } = compose.services;
  t.ok(db && redis && api, 'db, redis and api services');
  t.match(db!.image, /^postgres:17/);
  t.ok(db!.volumes.some((volume: string) => volume.startsWith('postgres_data:')), 'named volume postgres_data');
  t.ok('postgres_data' in compose.volumes);
  t.match(JSON.stringify(db!.healthcheck.test), 'pg_isready');
  t.match(JSON.stringify(redis!.healthcheck.test), 'ping');
  t.match(JSON.stringify(api!.healthcheck.test), '/readyz');
  t.same(api!.depends_on, { db: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
  t.same(api!.env_file, [{ path: '.env', required: false }]);
  t.equal(api!.build, '.');
  for (const [name, service] of Object.entries(compose.services)) {
    t.ok(service.restart, `${name} has a restart policy`);
    for (const port of service.ports ?? []) t.match(port, /^127\.0\.0\.1:/, `${name} publishes ${port} on loopback only`);
  }
});

t.test('every variable the app reads is documented in .env.example, and compose sets only real ones', async (t) => {
  for (const variable of variables) t.match(envExample, new RegExp(`^${variable}=`, 'm'), `${variable} in .env.example`);
  for (const variable of Object.keys(compose.services.api!.environment)) t.ok(variables.includes(variable), `compose sets ${variable}`);
  t.notMatch(envExample, /^(ADMIN_TOKEN|TOKEN_ENCRYPTION_KEY|GOOGLE_OAUTH_CLIENT_SECRET)=\S/m, 'no secret values in .env.example');
  t.match(envExample, /openssl rand -base64 32/, 'it says how to generate secrets');
});

t.test('docs/reference/configuration.md has a row for every variable, with its default', async (t) => {
  for (const variable of variables) t.match(configurationDoc, new RegExp(`^\\| \`${variable}\` \\| [^|]+ \\| .+ \\|$`, 'm'), `${variable} is documented`);
});
