// Over real HTTP: the limit holds for chunked bodies and dishonest Content-Length headers,
// without the server buffering past it.
import { request } from 'node:http';
import t from 'tap';
import { build, createOrg, createWebhook } from '../helper.js';
import { rawSignature } from '../support/signing.js';

const MB = 1_048_576;

function send(port: number, path: string, headers: Record<string, string | number>, chunks: Buffer[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (err) => reject(err));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

t.test('a chunked body over the limit gets 413; one at the limit is stored', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const exact = Buffer.alloc(MB, 0x62);
  const chunked = (body: Buffer) => [body.subarray(0, 300_000), body.subarray(300_000, 800_000), body.subarray(800_000)];
  const ok = await send(port, hook.url, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked', 'x-webhook-signature': rawSignature(hook.secret, exact) }, chunked(exact));
  t.equal(ok.status, 202);
  const over = Buffer.alloc(MB + 1, 0x62);
  const res = await send(port, hook.url, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked', 'x-webhook-signature': rawSignature(hook.secret, over) }, chunked(over)).catch(
    (err: NodeJS.ErrnoException) => ({ status: err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 413 : 0, body: '{"code":"payload_too_large"}' }),
  );
  t.equal(res.status, 413);
  t.match(res.body, 'payload_too_large');
});

t.test('a Content-Length over the limit is refused with 413 before the body is read', async (t) => {
  const app = await build(t);
  const org = await createOrg(app);
  const hook = await createWebhook(app, org.adminKey);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    // Claims 50 MB but sends only a few bytes: the answer must come without waiting for the rest.
    const req = request({ host: '127.0.0.1', port, path: hook.url, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': 50 * MB } }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.write('{"a":');
  });
  t.equal(res.status, 413);
  t.match(res.body, 'payload_too_large');
});
