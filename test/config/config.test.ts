import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';

t.test('applies documented defaults to an empty environment', async (t) => {
  const config = loadConfig({});
  t.match(config, {
    host: '127.0.0.1',
    port: 8080,
    baseUrl: 'http://127.0.0.1:8080',
    databaseUrl: undefined,
    databasePoolMax: 10,
    dataDir: './.data',
    migrateOnStart: true,
    logFormat: 'json',
    requestLogSlowMs: 1000,
    requestLogIncludeHealth: false,
    trustProxy: [],
    corsOrigins: [],
    maintenanceIntervalMs: 60_000,
  });
});

t.test('MAINTENANCE_INTERVAL_S is whole seconds from 1 to 3600', async (t) => {
  t.equal(loadConfig({ MAINTENANCE_INTERVAL_S: '5' }).maintenanceIntervalMs, 5000);
  for (const value of ['0', '3601', '0.5', 'often']) {
    const error = t.throws(() => loadConfig({ MAINTENANCE_INTERVAL_S: value }), `${value} refused`) as ConfigError;
    t.same(error.problems.map((problem) => problem.variable), ['MAINTENANCE_INTERVAL_S']);
  }
});

t.test('treats empty variables as unset, as in a copied .env.example', async (t) => {
  t.equal(loadConfig({ PORT: '', DATABASE_URL: '' }).port, 8080);
});

t.test('names every offending variable in one error', async (t) => {
  const error = t.throws(() =>
    loadConfig({ PORT: 'eighty', DATABASE_POOL_MAX: '0', MIGRATE_ON_START: 'maybe', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud' }),
  ) as ConfigError;
  t.type(error, ConfigError);
  const variables = error.problems.map((problem) => problem.variable).sort();
  t.same(variables, ['DATABASE_POOL_MAX', 'DATABASE_URL', 'LOG_LEVEL', 'MIGRATE_ON_START', 'PORT']);
  for (const variable of variables) t.match(error.message, `- ${variable}: `);
});

t.test('refuses TRUST_PROXY=true, * or a /0 range so client IPs cannot be forged', async (t) => {
  for (const value of ['true', '*', '0.0.0.0/0', '::/0', '10.0.0.0/33', 'proxy.example.com']) {
    const error = t.throws(() => loadConfig({ TRUST_PROXY: value })) as ConfigError;
    t.match(error.message, 'TRUST_PROXY', value);
  }
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.1,::1,loopback' }).trustProxy, ['10.0.0.0/8', '192.168.1.1', '::1', 'loopback']);
});

t.test('accepts only exact origins in CORS_ORIGINS', async (t) => {
  for (const value of ['*', 'https://*.example.com', 'https://a.example.com/path', 'ftp://x.example']) {
    t.throws(() => loadConfig({ CORS_ORIGINS: value }), { name: 'ConfigError' }, value);
  }
  t.same(loadConfig({ CORS_ORIGINS: 'https://a.example.com,http://localhost:3000' }).corsOrigins, [
    'https://a.example.com',
    'http://localhost:3000',
  ]);
});

t.test('derives BASE_URL from a wildcard HOST with localhost and strips a trailing slash', async (t) => {
  t.equal(loadConfig({ HOST: '0.0.0.0', PORT: '9000' }).baseUrl, 'http://localhost:9000');
  t.equal(loadConfig({ BASE_URL: 'https://sb.example.com/' }).baseUrl, 'https://sb.example.com');
  t.throws(() => loadConfig({ BASE_URL: 'sb.example.com' }), { name: 'ConfigError' });
});
