// The bench baseline: a bare Fastify server with one GET and one POST route that reads the same
// body and answers 202 — no auth, no database. Every figure in RESULTS.md is a ratio to this.
import Fastify from 'fastify';

const app = Fastify({ logger: false, bodyLimit: 1_048_576 });
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.get('/', async () => ({ status: 'ok' }));
app.post('/', async (_request, reply) => reply.status(202).send({ ok: true }));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
process.stdout.write(`listening ${app.server.address().port}\n`);
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
