import Fastify, { LogController } from 'fastify';
import t, { type Test } from 'tap';
import { createLogger } from '../../src/logger.js';
import requestLogPlugin from '../../src/plugins/request-log.js';
import { captureLogs, sleep, testConfig } from '../helper.js';

// The request-log plugin on its own, with a route that is slow on purpose.
async function appWithSlowRoute(t: Test, env: Record<string, string>) {
  const logs = captureLogs();
  const app = Fastify({ loggerInstance: createLogger({ level: 'info', format: 'json', destination: logs.destination }), logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }) });
  await app.register(requestLogPlugin, { config: testConfig(env) });
  app.get('/slow', async () => {
    await sleep(400);
    return { ok: true };
  });
  app.get('/fast', async () => ({ ok: true }));
  await app.ready();
  t.after(() => app.close());
  return { app, logs };
}

t.test('a request slower than REQUEST_LOG_SLOW_MS logs one warn line with method, route, status, duration and request id', async (t) => {
  const { app, logs } = await appWithSlowRoute(t, { REQUEST_LOG_SLOW_MS: '200' });
  await app.inject({ method: 'GET', url: '/slow' });
  await app.inject({ method: 'GET', url: '/fast' });
  const warns = logs.lines().filter((line) => line.level === 'warn');
  t.equal(warns.length, 1);
  t.match(warns[0], { msg: 'slow request', method: 'GET', route: '/slow', status: 200 });
  t.ok(Number(warns[0]?.duration_ms) >= 200);
  t.type(warns[0]?.request_id, 'string');
});

t.test('REQUEST_LOG_SLOW_MS=0 turns slow-request warnings off', async (t) => {
  const { app, logs } = await appWithSlowRoute(t, { REQUEST_LOG_SLOW_MS: '0' });
  await app.inject({ method: 'GET', url: '/slow' });
  t.equal(logs.lines().filter((line) => line.level === 'warn').length, 0);
  t.equal(logs.lines().filter((line) => line.msg === 'request completed').length, 1);
});
